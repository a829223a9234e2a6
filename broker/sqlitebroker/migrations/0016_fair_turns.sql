-- 0016: a tenant's turn in a fair queue is up to broker.FairQuantum jobs
-- that share one tag (broker/fair.go has the model). fair_tags.next is now
-- the tag of the tenant's turn in progress while used, the jobs already
-- given it, is below the quantum; a row written before (used 0) reads as a
-- turn not yet started at next, which is what it meant.
ALTER TABLE fair_tags ADD COLUMN used INTEGER NOT NULL DEFAULT 0;
