"""PostgreSQL: vram_spend_many(), the debits of several accounts in one call

Revision ID: 0003
Revises: 0002

A worker's signed-in debits that reach it while its last spend call is in flight go to the database together,
whichever accounts they are for (vram.web.quota): one call, one commit. The accounts' rows are locked in ascending
id order, so two workers' calls that share accounts wait for each other, never deadlock. Within an account each
debit is paid or refused in turn, in the order given, exactly as vram_spend() does for one account. The result
has, per debit, the purchased balance after it, or NULL when it was refused (or its account is gone).
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SPEND_MANY = """
CREATE OR REPLACE FUNCTION vram_spend_many(
    p_uid integer[], p_need bigint[], p_taken bigint[], p_now double precision[], p_reason text[]
) RETURNS bigint[] LANGUAGE plpgsql AS $$
DECLARE
    i integer;
    cur integer := NULL;
    here boolean := false;
    bal bigint;
    was bigint;
    res bigint[] := array_fill(NULL::bigint, ARRAY[cardinality(p_uid)]);
    paid integer[] := '{}';
BEGIN
    -- the debits by account, then in the order given: each account's row locked once, in ascending id order
    FOR i IN SELECT t.k FROM unnest(p_uid) WITH ORDINALITY AS t(u, k) ORDER BY t.u, t.k LOOP
        IF p_uid[i] IS DISTINCT FROM cur THEN
            IF here AND bal <> was THEN
                UPDATE users SET purchased_tokens = bal WHERE id = cur;
            END IF;
            cur := p_uid[i];
            SELECT purchased_tokens INTO bal FROM users WHERE id = cur FOR NO KEY UPDATE;
            here := FOUND;
            was := bal;
        END IF;
        IF here AND p_need[i] <= bal THEN
            bal := bal - p_need[i];
            res[i] := bal;
            paid := array_append(paid, i);
        END IF;
    END LOOP;
    IF here AND bal <> was THEN
        UPDATE users SET purchased_tokens = bal WHERE id = cur;
    END IF;
    INSERT INTO ledger (user_id, created_at, amount, bucket, reason)
    SELECT p_uid[k], p_now[k], -a.amount, a.bucket, p_reason[k]
    FROM unnest(paid) AS d(k)
    CROSS JOIN LATERAL (VALUES (p_need[k], 'purchased', 1), (p_taken[k], 'daily', 2)) AS a(amount, bucket, o)
    WHERE a.amount > 0
    ORDER BY d.k, a.o;
    RETURN res;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(SPEND_MANY)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS vram_spend_many(integer[], bigint[], bigint[], double precision[], text[])")
