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
    n integer := cardinality(p_uid);
    u integer;
    bal bigint;
    was bigint;
    res bigint[] := array_fill(NULL::bigint, ARRAY[cardinality(p_uid)]);
    paid integer[] := '{}';
BEGIN
    FOR u IN SELECT DISTINCT x FROM unnest(p_uid) AS t(x) ORDER BY x LOOP
        SELECT purchased_tokens INTO bal FROM users WHERE id = u FOR NO KEY UPDATE;
        CONTINUE WHEN NOT FOUND;
        was := bal;
        FOR i IN 1 .. n LOOP
            IF p_uid[i] = u AND p_need[i] <= bal THEN
                bal := bal - p_need[i];
                res[i] := bal;
                paid := array_append(paid, i);
            END IF;
        END LOOP;
        IF bal <> was THEN
            UPDATE users SET purchased_tokens = bal WHERE id = u;
        END IF;
    END LOOP;
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
