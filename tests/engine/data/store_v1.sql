BEGIN TRANSACTION;
CREATE TABLE events (
    instance TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (instance, seq));
INSERT INTO "events" VALUES('finished',0,'{"seq": 0, "type": "approval", "payload": "{\"ok\":true}", "at_ms": 3600000, "consumed_by": "wait:go#1"}');
CREATE TABLE instances (id TEXT PRIMARY KEY, data TEXT NOT NULL);
INSERT INTO "instances" VALUES('waiting','{"id": "waiting", "workflow": "legacy", "params": "{\"n\":1}", "status": "running", "output": null, "error": null, "created_ms": 0, "paused_ms": null}');
INSERT INTO "instances" VALUES('finished','{"id": "finished", "workflow": "legacy", "params": "{\"n\":5}", "status": "complete", "output": "{\"a\":6,\"b\":12,\"event\":{\"ok\":true}}", "error": null, "created_ms": 0, "paused_ms": null}');
CREATE TABLE steps (
    instance TEXT NOT NULL, key TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (instance, key));
INSERT INTO "steps" VALUES('waiting','do:first#1','{"kind": "do", "name": "first", "path": "first", "count": 1, "config": {"retries": {"limit": 5, "delay": 10000, "backoff": "exponential"}, "timeout": 600000}, "attempts": 1, "state": "done", "retry_at": null, "value": "2"}');
INSERT INTO "steps" VALUES('waiting','do:second#1','{"kind": "do", "name": "second", "path": "second", "count": 1, "config": {"retries": {"limit": 5, "delay": 10000, "backoff": "exponential"}, "timeout": 600000}, "attempts": 1, "state": "done", "retry_at": null, "value": "4"}');
INSERT INTO "steps" VALUES('finished','do:first#1','{"kind": "do", "name": "first", "path": "first", "count": 1, "config": {"retries": {"limit": 5, "delay": 10000, "backoff": "exponential"}, "timeout": 600000}, "attempts": 1, "state": "done", "retry_at": null, "value": "6"}');
INSERT INTO "steps" VALUES('finished','do:second#1','{"kind": "do", "name": "second", "path": "second", "count": 1, "config": {"retries": {"limit": 5, "delay": 10000, "backoff": "exponential"}, "timeout": 600000}, "attempts": 1, "state": "done", "retry_at": null, "value": "12"}');
INSERT INTO "steps" VALUES('waiting','sleep:nap#1','{"kind": "sleep", "name": "nap", "state": "done", "until": 3600000}');
INSERT INTO "steps" VALUES('waiting','wait:go#1','{"kind": "wait", "name": "go", "type": "approval", "state": "running", "deadline": 90000000, "timeout_ms": 86400000, "timeout_text": "86400000"}');
INSERT INTO "steps" VALUES('finished','sleep:nap#1','{"kind": "sleep", "name": "nap", "state": "done", "until": 3600000}');
INSERT INTO "steps" VALUES('finished','wait:go#1','{"kind": "wait", "name": "go", "type": "approval", "state": "done", "deadline": 90000000, "timeout_ms": 86400000, "timeout_text": "86400000", "value": "{\"payload\": {\"ok\": true}, \"timestamp\": 3600000, \"type\": \"approval\"}"}');
CREATE TABLE timeline (
    instance TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (instance, seq));
INSERT INTO "timeline" VALUES('waiting',0,'{"at_ms": 0, "kind": "workflow-start", "path": null, "name": null, "attempt": null}');
INSERT INTO "timeline" VALUES('finished',0,'{"at_ms": 0, "kind": "workflow-start", "path": null, "name": null, "attempt": null}');
INSERT INTO "timeline" VALUES('waiting',1,'{"at_ms": 0, "kind": "step-start", "path": "first", "name": "first", "attempt": null, "config": {"retries": {"limit": 5, "delay": 10000, "backoff": "exponential"}, "timeout": 600000}}');
INSERT INTO "timeline" VALUES('waiting',2,'{"at_ms": 0, "kind": "attempt-start", "path": "first", "name": "first", "attempt": 1}');
INSERT INTO "timeline" VALUES('waiting',3,'{"at_ms": 0, "kind": "attempt-success", "path": "first", "name": "first", "attempt": 1}');
INSERT INTO "timeline" VALUES('waiting',4,'{"at_ms": 0, "kind": "checkpoint", "path": "first", "name": "first", "attempt": 1, "count": 1}');
INSERT INTO "timeline" VALUES('waiting',5,'{"at_ms": 0, "kind": "step-start", "path": "second", "name": "second", "attempt": null, "config": {"retries": {"limit": 5, "delay": 10000, "backoff": "exponential"}, "timeout": 600000}}');
INSERT INTO "timeline" VALUES('waiting',6,'{"at_ms": 0, "kind": "attempt-start", "path": "second", "name": "second", "attempt": 1}');
INSERT INTO "timeline" VALUES('waiting',7,'{"at_ms": 0, "kind": "attempt-success", "path": "second", "name": "second", "attempt": 1}');
INSERT INTO "timeline" VALUES('waiting',8,'{"at_ms": 0, "kind": "checkpoint", "path": "second", "name": "second", "attempt": 1, "count": 1}');
INSERT INTO "timeline" VALUES('waiting',9,'{"at_ms": 0, "kind": "sleep-start", "path": "nap", "name": "nap", "attempt": null, "duration_ms": 3600000, "until_ms": 3600000}');
INSERT INTO "timeline" VALUES('finished',1,'{"at_ms": 0, "kind": "step-start", "path": "first", "name": "first", "attempt": null, "config": {"retries": {"limit": 5, "delay": 10000, "backoff": "exponential"}, "timeout": 600000}}');
INSERT INTO "timeline" VALUES('finished',2,'{"at_ms": 0, "kind": "attempt-start", "path": "first", "name": "first", "attempt": 1}');
INSERT INTO "timeline" VALUES('finished',3,'{"at_ms": 0, "kind": "attempt-success", "path": "first", "name": "first", "attempt": 1}');
INSERT INTO "timeline" VALUES('finished',4,'{"at_ms": 0, "kind": "checkpoint", "path": "first", "name": "first", "attempt": 1, "count": 1}');
INSERT INTO "timeline" VALUES('finished',5,'{"at_ms": 0, "kind": "step-start", "path": "second", "name": "second", "attempt": null, "config": {"retries": {"limit": 5, "delay": 10000, "backoff": "exponential"}, "timeout": 600000}}');
INSERT INTO "timeline" VALUES('finished',6,'{"at_ms": 0, "kind": "attempt-start", "path": "second", "name": "second", "attempt": 1}');
INSERT INTO "timeline" VALUES('finished',7,'{"at_ms": 0, "kind": "attempt-success", "path": "second", "name": "second", "attempt": 1}');
INSERT INTO "timeline" VALUES('finished',8,'{"at_ms": 0, "kind": "checkpoint", "path": "second", "name": "second", "attempt": 1, "count": 1}');
INSERT INTO "timeline" VALUES('finished',9,'{"at_ms": 0, "kind": "sleep-start", "path": "nap", "name": "nap", "attempt": null, "duration_ms": 3600000, "until_ms": 3600000}');
INSERT INTO "timeline" VALUES('waiting',10,'{"at_ms": 3600000, "kind": "sleep-end", "path": "nap", "name": "nap", "attempt": null}');
INSERT INTO "timeline" VALUES('waiting',11,'{"at_ms": 3600000, "kind": "wait-start", "path": "go", "name": "go", "attempt": null, "type": "approval", "timeout_ms": 86400000}');
INSERT INTO "timeline" VALUES('finished',10,'{"at_ms": 3600000, "kind": "sleep-end", "path": "nap", "name": "nap", "attempt": null}');
INSERT INTO "timeline" VALUES('finished',11,'{"at_ms": 3600000, "kind": "wait-start", "path": "go", "name": "go", "attempt": null, "type": "approval", "timeout_ms": 86400000}');
INSERT INTO "timeline" VALUES('finished',12,'{"at_ms": 3600000, "kind": "event-received", "path": null, "name": null, "attempt": null, "type": "approval", "seq": 0}');
INSERT INTO "timeline" VALUES('finished',13,'{"at_ms": 3600000, "kind": "wait-end", "path": "go", "name": "go", "attempt": null, "type": "approval", "seq": 0}');
INSERT INTO "timeline" VALUES('finished',14,'{"at_ms": 3600000, "kind": "workflow-success", "path": null, "name": null, "attempt": null}');
COMMIT;
PRAGMA application_id = 1635214897;
PRAGMA user_version = 1;
