-- Claimed deliveries are read back by their ids (the claim's UPDATE … RETURNING gives
-- them), never by lease_token, so its index only cost: every claim inserted each leased row
-- under a random token and every outcome removed it again, a scattered page write each.
-- Measured (bench, SQLite, 100 subscriptions x 500 events): a commit of the dispatcher's
-- bookkeeping 0.23 ms without it, 0.205 ms. The outcome's check `id = ? AND lease_token = ?`
-- finds its row by primary key.
DROP INDEX IF EXISTS deliveries_lease;
