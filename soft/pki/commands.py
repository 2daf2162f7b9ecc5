"""The ``refmeter pki`` and ``refmeter firmware`` commands."""

import argparse
import datetime
import os
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path

from cryptography import x509

from refmeter.gateware.meter import DEMO_METER_ID

from ..device import format_eui64
from ..security import provision
from .anchors import TrustAnchors
from .certificates import CertificateInfo, format_identity, inspect, load_certificate
from .control import ANCHORS_FILE, ControlModule
from .demo import DemoPki
from .firmware import ImageKind, sign_image, verify_image
from .roles import ISSUER, Role, Usage
from .slots import FirmwareSlots
from .validation import validate_path

__all__ = ["add_commands"]


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def add_commands(command: Callable[..., argparse.ArgumentParser]) -> None:
    pki = command("pki", _cmd_pki, "make a demonstration PKI, explain a certificate chain, or "
                                   "commission a meter from a PKI", """
        refmeter pki init demo-pki                      root, role CAs, CRLs, parties, a meter
        refmeter pki show demo-pki/supplier/signing.pem --pki demo-pki
        refmeter --url socket://127.0.0.1:7700 pki commission demo-pki --state meter-state
                                                        (seal open) anchors, agreed keys provisioned""")
    pki.add_argument("action", choices=("init", "show", "commission"))
    pki.add_argument("path", type=Path, help="init, commission: the PKI directory; show: a "
                                             "certificate (PEM or DER)")
    pki.add_argument("--pki", type=Path, help="show: the PKI directory whose root, CAs and CRLs "
                                              "the chain is checked against")
    pki.add_argument("--meter-id", type=lambda text: int(text.replace("-", ""), 16),
                     default=DEMO_METER_ID, help="init: the meter's EUI-64 (default "
                                                 f"{format_eui64(DEMO_METER_ID)})")
    pki.add_argument("--state", type=Path, help="commission: the control module's state "
                                                "directory (anchors, counters)")

    firmware = command("firmware", _cmd_firmware, "sign, verify or activate a firmware image "
                                                  "(manufacturer-signed, A/B slots)", """
        refmeter firmware sign meter.bit --kind bitstream --version 3 --pki demo-pki -o meter.img
        refmeter firmware verify meter.img --pki demo-pki
        refmeter firmware activate meter.img --pki demo-pki --slots slots \\
            --self-test 'refmeter --url sim: read meter_id'""")
    firmware.add_argument("action", choices=("sign", "verify", "activate"))
    firmware.add_argument("image", type=Path, help="sign: the raw image; verify, activate: a "
                                                   "signed one")
    firmware.add_argument("--pki", type=Path, required=True,
                          help="the PKI directory: sign uses its manufacturer signing key, "
                               "verify and activate its manufacturer signing certificate")
    firmware.add_argument("--kind", choices=[kind.name.lower().replace("_", "-")
                                             for kind in ImageKind], default="bitstream",
                          help="sign: what the image is (default bitstream)")
    firmware.add_argument("--version", type=int, help="sign: the image's version, above the "
                                                      "running one's")
    firmware.add_argument("-o", "--output", type=Path, help="sign: where the signed image goes "
                                                            "(default IMAGE.signed)")
    firmware.add_argument("--slots", type=Path, help="activate: the A/B slot directory")
    firmware.add_argument("--self-test", help="activate: a command run with the new image's "
                                              "path in $REFMETER_IMAGE; exit 0 keeps the image")


def _require(args: argparse.Namespace, *names: str) -> None:
    missing = [f"--{name.replace('_', '-')}" for name in names if getattr(args, name) is None]
    if missing:
        raise ValueError(f"{args.action} needs {', '.join(missing)}")


def _cmd_pki(args: argparse.Namespace) -> int:
    if args.action == "init":
        pki = DemoPki.generate(args.meter_id, at=_utc_now())
        pki.save(args.path)
        print(f"demonstration PKI in {args.path}: root, {len(pki.cas)} role CAs with CRLs, "
              f"{len(pki.parties)} end-entity certificates (meter {format_eui64(args.meter_id)}); "
              f"private keys readable by their owner only")
    elif args.action == "show":
        _require(args, "pki")
        _show_chain(load_certificate(args.path.read_bytes()), DemoPki.load(args.pki))
    else:
        _require(args, "state")
        _commission(args)
    return 0


def _show_chain(certificate: x509.Certificate, pki: DemoPki) -> None:
    info = inspect(certificate)
    chain: list[CertificateInfo] = [info]
    by_key = {inspect(ca.certificate).key_id: ca.certificate
              for ca in [pki.root, *pki.cas.values()]}
    while chain[-1].role is not Role.ROOT and chain[-1].issuer_key_id in by_key:
        chain.append(inspect(by_key[chain[-1].issuer_key_id]))
    for depth, link in enumerate(chain):
        what = _explain(link)
        print(("  " * depth) + ("" if depth == 0 else "issued by ") + what)
    credentials = pki.credentials(certificate)
    validate_path(certificate, credentials.intermediates, pki.root.certificate, credentials.crls,
                  at=_utc_now())
    print("valid now: each certificate is signed by the next, within its dates, issued by "
          "its role's CA, on no current CRL, and the chain reaches this PKI's root")


def _explain(info: CertificateInfo) -> str:
    certificate = info.certificate
    dates = (f"valid {certificate.not_valid_before_utc:%Y-%m-%d} to "
             f"{certificate.not_valid_after_utc:%Y-%m-%d}")
    if info.role is Role.ROOT:
        return f"the root CA, self-signed, which certifies the role CAs; {dates}"
    if info.is_ca:
        certified = " and ".join(role.value for role, issuer in ISSUER.items()
                                 if issuer is info.role)
        return f"the {info.role.value} CA, which certifies {certified} certificates; {dates}"
    does = {Usage.SIGNING: "signs (digitalSignature)",
            Usage.KEY_AGREEMENT: "agrees keys (keyAgreement: static ECDH)"}[info.usage]
    return (f"{info.role.value} {format_identity(info.identity)}'s {info.usage.value} "
            f"certificate: a P-256 key that {does}; key id {info.key_id.hex()}; {dates}")


def _commission(args: argparse.Namespace) -> None:
    # The CLI's one way to open --url (serial, socket:// or an in-process simulation);
    # imported here since the CLI imports this module.
    from ..cli import _open_meter

    pki = DemoPki.load(args.path)
    meter_key = pki.parties[Role.METER, Usage.KEY_AGREEMENT]
    args.state.mkdir(parents=True, exist_ok=True)
    TrustAnchors.commission(args.state / ANCHORS_FILE, pki.anchors(), at=_utc_now())
    control = ControlModule(args.state, identity=meter_key.info.identity,
                            key_agreement_key=meter_key.key, handlers={})
    keys = control.keyset()
    with _open_meter(args) as meter:
        provision(meter, keys)
    key_file = args.state / f"keys-{format_eui64(keys.meter_id)}.json"
    keys.save(key_file)
    print(f"meter {format_eui64(keys.meter_id)}: {len(keys.keys)} slot keys agreed with the "
          f"parties' key-agreement certificates and provisioned; anchors in "
          f"{args.state / ANCHORS_FILE}, keys in {key_file}")


def _cmd_firmware(args: argparse.Namespace) -> int:
    pki = DemoPki.load(args.pki)
    manufacturer = pki.parties[Role.MANUFACTURER, Usage.SIGNING]
    signer = pki.credentials(manufacturer.certificate)
    validate_path(signer.certificate, signer.intermediates, pki.root.certificate, signer.crls,
                  at=_utc_now())
    data = args.image.read_bytes()
    if args.action == "sign":
        _require(args, "version")
        output = args.output or args.image.with_name(args.image.name + ".signed")
        kind = ImageKind[args.kind.upper().replace("-", "_")]
        output.write_bytes(sign_image(data, kind=kind, version=args.version,
                                      key=manufacturer.key, signer=manufacturer.info))
        print(f"{output}: {kind.name.lower()} version {args.version}, {len(data)} bytes, signed "
              f"by {manufacturer.info.describe()}")
    elif args.action == "verify":
        image = verify_image(data, manufacturer.info)
        print(f"{args.image}: {image.kind.name.lower()} version {image.version}, "
              f"{len(image.body)} bytes, SHA-256 {image.digest.hex()}, signed by "
              f"{manufacturer.info.describe()}")
    else:
        _require(args, "slots", "self_test")
        slots = FirmwareSlots(args.slots)
        outcome = slots.activate(data, manufacturer.info, lambda path: _self_test(args.self_test,
                                                                                  path))
        if not outcome.confirmed:
            print(f"the new image failed its self-test: slot {outcome.slot.name} (the previous "
                  f"image) restored")
            return 1
        print(f"slot {outcome.slot.name} now runs {args.image} (the previous image kept in slot "
              f"{outcome.slot.other.name} as fallback)")
    return 0


def _self_test(command: str, image: Path) -> bool:
    return subprocess.run(shlex.split(command), env=os.environ | {"REFMETER_IMAGE": str(image)},
                          check=False).returncode == 0
