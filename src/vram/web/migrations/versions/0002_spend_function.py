"""PostgreSQL: vram_spend(), the purchased tokens and ledger rows of several debits of one account in one call

Revision ID: 0002
Revises: 0001

The debits of one account that reach a worker while its last statement for that account is in flight go to the
database together (vram.web.quota): one row lock, one commit. Each debit is paid or refused in turn, as if it came
alone: paid when the purchased tokens it needs (0 for one the daily allowance paid) are still there. The result
has, per debit, the purchased balance after it, or NULL when it was refused (or the account is gone).
SQLite needs none of this (one writer at a time, in process).
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SPEND = """
CREATE OR REPLACE FUNCTION vram_spend(
    p_uid integer, p_need bigint[], p_taken bigint[], p_now double precision[], p_reason text[]
) RETURNS bigint[] LANGUAGE plpgsql AS $$
DECLARE
    bal bigint;
    was bigint;
    res bigint[] := '{}';
    paid integer[] := '{}';
BEGIN
    SELECT purchased_tokens INTO bal FROM users WHERE id = p_uid FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN array_fill(NULL::bigint, ARRAY[cardinality(p_need)]);
    END IF;
    was := bal;
    FOR i IN 1 .. cardinality(p_need) LOOP
        IF p_need[i] <= bal THEN
            bal := bal - p_need[i];
            paid := array_append(paid, i);
            res := array_append(res, bal);
        ELSE
            res := array_append(res, NULL::bigint);
        END IF;
    END LOOP;
    INSERT INTO ledger (user_id, created_at, amount, bucket, reason)
    SELECT p_uid, p_now[k], -a.amount, a.bucket, p_reason[k]
    FROM unnest(paid) WITH ORDINALITY AS d(k, n)
    CROSS JOIN LATERAL (VALUES (p_need[k], 'purchased', 1), (p_taken[k], 'daily', 2)) AS a(amount, bucket, o)
    WHERE a.amount > 0
    ORDER BY d.n, a.o;
    IF bal <> was THEN
        UPDATE users SET purchased_tokens = bal WHERE id = p_uid;
    END IF;
    RETURN res;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(SPEND)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS vram_spend(integer, bigint[], bigint[], double precision[], text[])")
