"""Who is who in the PKI, and which gateware key slot each party's key agreement
fills: the one place the PKI's roles meet the gateware's authorities.

Every party has a role, named in its certificates' organisational unit. A remote
party holds two end-entity certificates, one for signatures and one for key
agreement (GB-SMKI keeps them apart, so that a key is used one way only); a CA
holds one for certificates and CRLs.
"""

import enum

from refmeter.gateware.security.authority import Authority

__all__ = ["Role", "Usage", "CA_ROLES", "ISSUER", "GATEWARE_SLOT", "COMMAND_AUTHORITY"]


class Role(enum.Enum):
    """A party, by what it does; the value is its organisational unit (OU)."""

    ROOT = "root"                  #: the root CA: certifies the role CAs
    RECOVERY = "recovery"          #: replaces any trust anchor when a role's own key is lost
    BROKER = "broker"              #: the access-control broker (the DCC in GB)
    SUPPLIER = "supplier"          #: the energy supplier's head-end
    NETWORK = "network"            #: the network operator
    MANUFACTURER = "manufacturer"  #: signs firmware; calibrates in the factory
    METER = "meter"                #: a meter (a device certificate)


class Usage(enum.Enum):
    """What a certificate's key may do: its one critical key usage."""

    SIGNING = "signing"              #: digitalSignature: commands, firmware
    KEY_AGREEMENT = "key-agreement"  #: keyAgreement: static-static ECDH
    CERTIFICATION = "certification"  #: keyCertSign and cRLSign: a CA


#: The roles that run a CA (root and one per kind of party).
CA_ROLES = frozenset({Role.ROOT, Role.BROKER, Role.SUPPLIER, Role.NETWORK, Role.MANUFACTURER})

#: The CA that certifies each end-entity role. A meter's certificates come from its
#: manufacturer's CA (it is made there); the recovery party is the root's own.
ISSUER = {Role.RECOVERY: Role.ROOT, Role.BROKER: Role.BROKER, Role.SUPPLIER: Role.SUPPLIER,
          Role.NETWORK: Role.NETWORK, Role.MANUFACTURER: Role.MANUFACTURER,
          Role.METER: Role.MANUFACTURER}

#: Whose key-agreement key, with the meter's, yields each gateware slot's AES-128 key.
#: * supplier, broker, network: their own slots, for their commands;
#: * local: the manufacturer, the only party that writes with the seal open
#:   (calibration in the factory);
#: * reading: the supplier, who bills from sealed readings and must be able to check them.
GATEWARE_SLOT = {Authority.SUPPLIER: Role.SUPPLIER, Authority.BROKER: Role.BROKER,
                 Authority.NETWORK: Role.NETWORK, Authority.LOCAL: Role.MANUFACTURER,
                 Authority.READING: Role.SUPPLIER}

#: The slot whose key writes a verified command's registers in the gateware, by the
#: command's originator: each party's own (the inverse of GATEWARE_SLOT for them).
COMMAND_AUTHORITY = {role: authority for authority, role in GATEWARE_SLOT.items()
                     if authority.slot_name == role.value}
