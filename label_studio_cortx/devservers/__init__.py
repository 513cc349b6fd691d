"""The dev servers the demo and the tests start: moto, the CORTX-profile filter, SeaweedFS, Ceph RGW, a fault
proxy, Label Studio itself; plus the demo and its sample data. Imports ``connection.config`` only."""
