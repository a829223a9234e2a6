-- 0010: numbers below 1 were stored when 0 was the default priority and
-- higher numbers ran first. They become broker.StoredPriority's reading of
-- them (3 - p, at most 1000), so the old default is the default again, a job
-- stored below it stays below it, and none jumps ahead of priority 1.
UPDATE jobs SET priority = MIN(3 - priority, 1000) WHERE priority < 1;
