-- tailbox: the outbox table and the replication user, for MySQL 8.0/8.4 and
-- MariaDB 10.6+. Column names are tailbox's defaults (those of Debezium's
-- Outbox Event Router); any other names work with outbox.fields.
--
-- The server needs (my.cnf, [mysqld]; `tailbox check` tells what is missing):
--   log_bin, binlog_format=ROW, binlog_row_image=FULL, binlog_row_metadata=FULL
--   and a unique server_id; GTIDs are recommended (MySQL: gtid_mode=ON,
--   enforce_gtid_consistency=ON; MariaDB always has them). MariaDB's defaults
--   binlog_format=MIXED and binlog_row_metadata=NO_LOG do not work.

CREATE DATABASE IF NOT EXISTS shop;

CREATE TABLE IF NOT EXISTS shop.outbox (
  id            CHAR(36)     NOT NULL PRIMARY KEY,  -- event id    -> header "id", envelope id
  aggregatetype VARCHAR(255) NOT NULL,              -- route_by    -> topic outbox.event.<aggregatetype>
  aggregateid   VARCHAR(255) NOT NULL,              -- key         -> Kafka record key (per-aggregate order)
  type          VARCHAR(255) NOT NULL,              -- event type  -> envelope type, header "type"
  payload       JSON,                               -- payload     -> envelope payload (MariaDB: LONGTEXT with a JSON check)
  created_at    TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)  -- optional timestamp column (outbox.fields.timestamp)
);

-- A service writes its business rows and the outbox row in one transaction:
--   START TRANSACTION;
--   INSERT INTO shop.orders ...;
--   INSERT INTO shop.outbox (id, aggregatetype, aggregateid, type, payload)
--     VALUES (UUID(), 'order', '42', 'OrderCreated', '{"total": 12.5}');
--   COMMIT;
-- tailbox ignores DELETEs, so the service may delete the row in the same or a
-- later transaction to keep the table small.

-- The replication user tailbox connects as (source.user / source.password).
-- Replace the password; give it to tailbox as TAILBOX_MYSQL_PASSWORD.
CREATE USER IF NOT EXISTS 'cdc'@'%' IDENTIFIED BY 'change-me';

-- REPLICATION SLAVE: read the binlog stream.
-- REPLICATION CLIENT: SHOW BINARY LOGS, SHOW MASTER/BINARY LOG STATUS.
--   MariaDB >= 10.5.2 renamed this privilege BINLOG MONITOR; REPLICATION
--   CLIENT stays an alias of it (SHOW GRANTS then prints BINLOG MONITOR).
--   There you may write the same grant as:
--   GRANT REPLICATION SLAVE, BINLOG MONITOR, REPLICATION MASTER ADMIN ON *.* TO 'cdc'@'%';
-- REPLICATION MASTER ADMIN (MariaDB >= 10.5.2 only, hence the /*M!100502 */
--   comment, which MySQL skips): SHOW SLAVE HOSTS, so that `tailbox check`
--   sees a replica or connector that already uses source.server_id, and a
--   clash names who holds the id. It also lets the user set a few primary-
--   side variables (gtid_binlog_state, gtid_domain_id, server_id...); leave
--   it out if that is too much: check then warns that it cannot tell. MySQL's
--   SHOW REPLICAS needs REPLICATION SLAVE only.
GRANT REPLICATION SLAVE, REPLICATION CLIENT /*M!100502 , REPLICATION MASTER ADMIN */ ON *.* TO 'cdc'@'%';

-- SELECT on the outbox schema: table checks, and column names from
-- information_schema when source.allow_minimal_metadata is true.
GRANT SELECT ON shop.* TO 'cdc'@'%';

-- DELETE on the outbox table: only with outbox.cleanup.enabled: true, which
-- deletes published rows once the checkpoint covering their events is
-- durable (`tailbox check` verifies it then).
-- GRANT DELETE ON shop.outbox TO 'cdc'@'%';
