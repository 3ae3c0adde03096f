-- The queue: messages, their body chunks, recipients and attempt history,
-- the event journal and its consumers' cursors, the suppression list.
-- Times the application schedules by are Unix nanoseconds (bigint), as the
-- application's clock gives them; lease expiry is the database's clock.

CREATE SEQUENCE message_seq;

CREATE TABLE messages (
	id           text PRIMARY KEY,
	seq          bigint NOT NULL UNIQUE,
	status       text NOT NULL,           -- queued, active, deferred, held, done
	sched_at     bigint,                  -- next attempt (ns) when queued or deferred; NULL otherwise
	arrival      bigint NOT NULL,
	finished     bigint,                  -- when it became done (ns)
	held_at      bigint,
	lease_owner  text,                    -- node holding the lease; NULL when not leased
	lease_expiry timestamptz,             -- database clock
	epoch        bigint NOT NULL DEFAULT 0, -- bumped by every lease: the lease token
	leased       text[] NOT NULL DEFAULT '{}',
	chunks       integer NOT NULL,
	data         jsonb NOT NULL            -- the message's other fields
);
CREATE INDEX messages_due ON messages (sched_at, id) WHERE sched_at IS NOT NULL;
CREATE INDEX messages_status ON messages (status);
CREATE INDEX messages_finished ON messages (finished) WHERE finished IS NOT NULL;
CREATE INDEX messages_lease_expiry ON messages (lease_expiry) WHERE lease_owner IS NOT NULL;

CREATE TABLE body_chunks (
	message_id text NOT NULL,
	n          integer NOT NULL,
	data       bytea NOT NULL,            -- at most 1 MiB a row
	PRIMARY KEY (message_id, n)
);

-- Bodies being received: a large body's chunks are written as they arrive,
-- each in its own short statement (a slow client holds no transaction and
-- no connection), and become part of a message only when the message row
-- commits, which deletes its row here. A row left by a node that restarted,
-- or older than a day, is debris: its chunks are deleted.
CREATE TABLE pending_bodies (
	message_id text PRIMARY KEY,
	node       text NOT NULL,
	started    bigint NOT NULL
);

CREATE TABLE recipients (
	message_id   text NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
	idx          integer NOT NULL,
	address      text NOT NULL,
	state        text NOT NULL,
	next_attempt bigint,
	data         jsonb NOT NULL,
	PRIMARY KEY (message_id, idx)
);

CREATE TABLE attempts (
	message_id text NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
	idx        integer NOT NULL,
	data       jsonb NOT NULL,
	PRIMARY KEY (message_id, idx)
);

CREATE TABLE events (
	seq  bigint PRIMARY KEY,
	time bigint NOT NULL,
	data bytea NOT NULL
);
CREATE INDEX events_time ON events (time);
-- One row: the last event sequence number. Journaling transactions update
-- it, so they serialise on its row lock and sequence numbers rise in commit
-- order (a reader never sees seq N+1 before N).
CREATE TABLE event_seq (last bigint NOT NULL);
INSERT INTO event_seq VALUES (0);

CREATE TABLE cursors (
	name text PRIMARY KEY,
	seq  bigint NOT NULL
);

CREATE TABLE suppressed (
	address text PRIMARY KEY,             -- lower-cased
	time    bigint NOT NULL,
	data    jsonb NOT NULL
);
