"""When an event counts as delivered: on the broker's PUBACK, or once the cloud confirmed it;
and holding events while the cloud consumer is away (docs/delivery.md). The ``[delivery]``
section is gateway.config's DeliverySection."""
