-- Demo transactions for docker-compose.yml's demo-events service (MySQL 8.0+
-- or MariaDB 10.6+ with config/outbox.sql applied); safe to run again, each
-- run is a new order. Each transaction is what a service writes: its
-- business rows and, in the same transaction, the outbox rows announcing
-- them. tailbox publishes the outbox rows to outbox.event.order and
-- outbox.event.customer, keyed by aggregate id.

CREATE TABLE IF NOT EXISTS shop.orders (
  id          CHAR(36)      NOT NULL PRIMARY KEY,
  customer_id VARCHAR(36)   NOT NULL,
  total       DECIMAL(10,2) NOT NULL,
  status      VARCHAR(20)   NOT NULL
);

SET @order_id = UUID(), @customer_id = 'customer-7';

START TRANSACTION;
INSERT INTO shop.orders (id, customer_id, total, status) VALUES (@order_id, @customer_id, 12.50, 'CREATED');
INSERT INTO shop.outbox (id, aggregatetype, aggregateid, type, payload)
  VALUES (UUID(), 'order', @order_id, 'OrderCreated',
          JSON_OBJECT('orderId', @order_id, 'customerId', @customer_id, 'total', 12.50));
INSERT INTO shop.outbox (id, aggregatetype, aggregateid, type, payload)
  VALUES (UUID(), 'customer', @customer_id, 'CustomerOrdered',
          JSON_OBJECT('customerId', @customer_id, 'orderId', @order_id));
COMMIT;

START TRANSACTION;
UPDATE shop.orders SET status = 'PAID' WHERE id = @order_id;
INSERT INTO shop.outbox (id, aggregatetype, aggregateid, type, payload)
  VALUES (UUID(), 'order', @order_id, 'OrderPaid', JSON_OBJECT('orderId', @order_id, 'amount', 12.50));
-- The usual clean-up, in the same transaction: tailbox ignores DELETEs.
DELETE FROM shop.outbox WHERE aggregateid = @order_id AND type = 'OrderCreated';
COMMIT;

-- A rolled-back transaction never reaches the binlog: no event.
START TRANSACTION;
INSERT INTO shop.orders (id, customer_id, total, status) VALUES (UUID(), 'customer-8', 99.00, 'CREATED');
INSERT INTO shop.outbox (id, aggregatetype, aggregateid, type, payload)
  VALUES (UUID(), 'order', 'never', 'OrderCreated', JSON_OBJECT('note', 'rolled back'));
ROLLBACK;
