"""The emulator's ACI mode (generation B): what api.redpill.ai's gateway serves.

See :mod:`redpill_integrations.emulator.aci.routes` for the endpoints and
``docs/aci-emulator.md`` for the protocol with its public sources.
"""
