"""The relay's batches on the real broker: a whole batch confirmed in one wait, and a batch
stopped short says exactly how many messages, from the first, the broker took."""

import uuid

import pytest
from kombu import Connection, Exchange, Queue

from concord_kit.bus import BusPublisher, Outgoing, PartlyPublished, Unroutable
from tests.conftest import AMQP_URI

pytestmark = pytest.mark.integration


@pytest.fixture
def queue(clean_environment):
    name = f"test.batches.{uuid.uuid4()}"
    exchange = f"test.batches.{uuid.uuid4()}"
    with Connection(AMQP_URI) as conn:
        channel = conn.channel()
        Exchange(exchange, type="direct", durable=False)(channel).declare()
        Queue(name, durable=False)(channel).declare()
        channel.queue_bind(name, exchange, "here")
    yield exchange, name
    with Connection(AMQP_URI) as conn:
        Queue(name, no_declare=True)(conn.channel()).delete()
        conn.channel().exchange_delete(exchange)


def count(name: str) -> int:
    with Connection(AMQP_URI) as conn:
        return (
            Queue(name, no_declare=True)(conn.channel()).queue_declare(passive=True).message_count
        )


def test_a_batch_is_published_and_confirmed_whole(queue):
    exchange, name = queue
    publisher = BusPublisher(AMQP_URI)
    batch = [
        Outgoing({"n": i}, exchange=exchange, routing_key="here", message_id=str(uuid.uuid4()))
        for i in range(300)
    ]
    assert publisher.publish_many(batch) == 300
    assert publisher.publish_many(batch[:5]) == 5  # the same channel goes on counting
    publisher.close()
    assert count(name) == 305


def test_a_batch_stops_at_the_first_message_the_broker_cannot_route(queue):
    exchange, name = queue
    publisher = BusPublisher(AMQP_URI)
    batch = [
        Outgoing({"n": 1}, exchange=exchange, routing_key="here", message_id=str(uuid.uuid4())),
        Outgoing({"n": 2}, exchange=exchange, routing_key="nowhere", message_id=str(uuid.uuid4())),
        Outgoing({"n": 3}, exchange=exchange, routing_key="here", message_id=str(uuid.uuid4())),
    ]
    with pytest.raises(PartlyPublished) as stopped:
        publisher.publish_many(batch)
    assert stopped.value.confirmed == 1
    assert isinstance(stopped.value.cause, Unroutable)
    # The next batch on the same publisher is counted right after the refusal.
    assert publisher.publish_many(batch[:1]) == 1
    publisher.close()
    assert count(name) == 3  # 1 and 3 of the first batch (3 is published again later), 1 again
