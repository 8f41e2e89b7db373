"""rclpy event callbacks for the node's publishers and subscriptions: none.

rclpy gives every publisher and subscription, unless told otherwise, its default incompatible-QoS
and incompatible-type handlers. Each is a waitable that the executor walks in Python on every
wake-up, and that walk sits between a camera frame's arrival and its callback. With the node's 15
publishers and two camera subscriptions (34 handlers) a guard condition triggered -> its callback
took 0.49 ms on the 2-core AVX2 CPU (p50 of 200), with the two that rclpy's own /parameter_events
publisher keeps 0.21-0.23 ms (taking those out of the wait set breaks ``destroy_node``), with none
0.10-0.19 ms. What they would report:

* for an output publisher, a subscriber asking for an incompatible QoS or type: the subscriber's
  own node reports that too;
* for a camera subscription (best effort, volatile: compatible with every publisher's QoS), a
  publisher of another message type: Fast DDS (rmw_fastrtps of Kilted) does not raise that event
  (checked with a CompressedImage publisher on an Image topic), so the handler would only cost.
"""

from __future__ import annotations

try:
    from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
except ImportError:  # pragma: no cover - rclpy before Iron
    from rclpy.qos_event import PublisherEventCallbacks, SubscriptionEventCallbacks


def quiet_publisher() -> PublisherEventCallbacks:
    """No event handlers on a publisher."""
    return PublisherEventCallbacks(use_default_callbacks=False)


def quiet_subscription() -> SubscriptionEventCallbacks:
    """No event handlers on a subscription."""
    return SubscriptionEventCallbacks(use_default_callbacks=False)

