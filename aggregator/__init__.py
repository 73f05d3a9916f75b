"""aggregator: a French news feed aggregator that groups articles into stories and topics."""

__version__ = "0.1.0"
