"""The demo's package lists: a Pungi ``rpms.json`` per compose, written with productmd,
and the same rpms as each night's OSTree commits carry them (:func:`commit_rpms`).

A few dozen plausible Fedora Atomic Host packages. Each one is updated every few nights
(its own period), so consecutive releases differ by some upgrades; one package joins the
list and one leaves it part-way through, so release notes also show an addition and a
removal.
"""

from __future__ import annotations

import re
from pathlib import Path

import productmd.rpms

#: (source name, binary names, version, release, update period in nights); the last
#: version number grows by one every period.
PACKAGES: tuple[tuple[str, tuple[str, ...], str, int, int], ...] = (
    ("kernel", ("kernel", "kernel-core", "kernel-modules"), "4.16.3", 301, 6),
    ("ostree", ("ostree", "ostree-libs", "ostree-grub2"), "2018.5", 1, 11),
    ("rpm-ostree", ("rpm-ostree", "rpm-ostree-libs"), "2018.5", 1, 9),
    ("docker", ("docker", "docker-common", "docker-rhel-push-plugin"), "1.13.1", 51, 13),
    ("podman", ("podman",), "0.5.2", 1, 7),
    ("runc", ("runc",), "1.0.0", 19, 17),
    ("containerd", ("containerd",), "1.1.0", 2, 19),
    ("skopeo", ("skopeo", "containers-common"), "0.1.29", 4, 10),
    ("atomic", ("atomic", "python3-atomic"), "1.22.1", 2, 23),
    ("systemd", ("systemd", "systemd-libs", "systemd-pam", "systemd-udev"), "238", 7, 8),
    ("glibc", ("glibc", "glibc-common", "glibc-langpack-en"), "2.27", 8, 15),
    ("openssl", ("openssl", "openssl-libs"), "1.1.0", 5, 12),
    ("openssh", ("openssh", "openssh-clients", "openssh-server"), "7.7p1", 3, 14),
    ("bash", ("bash",), "4.4.19", 2, 29),
    ("coreutils", ("coreutils", "coreutils-common"), "8.29", 6, 31),
    ("selinux-policy", ("selinux-policy", "selinux-policy-targeted"), "3.14.1", 24, 4),
    ("NetworkManager", ("NetworkManager", "NetworkManager-libnm"), "1.10.6", 2, 16),
    ("cloud-init", ("cloud-init",), "17.1", 6, 21),
    ("grub2", ("grub2-efi-x64", "grub2-tools", "grub2-tools-minimal"), "2.02", 34, 27),
    ("dracut", ("dracut", "dracut-network"), "047", 8, 25),
    ("util-linux", ("util-linux", "libblkid", "libmount"), "2.32", 2, 18),
    ("vim", ("vim-minimal",), "8.0.1789", 1, 5),
    ("tmux", ("tmux",), "2.7", 1, 33),
    ("sudo", ("sudo",), "1.8.23", 1, 26),
    ("curl", ("curl", "libcurl"), "7.59.0", 3, 20),
    ("flannel", ("flannel",), "0.9.0", 2, 35),
    ("etcd", ("etcd",), "3.2.16", 2, 22),
)
#: Nights from which ``toolbox`` is in the list, and before which ``docker-latest`` is.
ADDED_FROM, REMOVED_FROM = 24, 40


def nevra(name: str, version: str, release: str, arch: str) -> str:
    """productmd's ``name-epoch:version-release.arch`` (epoch 0)."""
    return f"{name}-0:{version}-{release}.{arch}"


def _bump(version: str, steps: int) -> str:
    """``version`` with its last number ``steps`` higher, keeping its width and any suffix
    (``4.16.3`` -> ``4.16.5``, ``047`` -> ``048``, ``7.7p1`` -> ``7.8p1``)."""
    head, _, last = version.rpartition(".")
    match = re.match(r"^([0-9]+)(.*)$", last)
    if not steps or match is None:
        return version
    digits, suffix = match.groups()
    bumped = str(int(digits) + steps).zfill(len(digits)) + suffix
    return f"{head}.{bumped}" if head else bumped


def package_list(night: int, fedora: str) -> list[tuple[str, list[str], str, str]]:
    """(source name, binary names, version, release) of every package on ``night``."""
    out = []
    for source, binaries, version, release, period in PACKAGES:
        steps = max(night, 0) // period
        out.append((source, list(binaries), _bump(version, steps), f"{release}.fc{fedora}"))
    if night >= ADDED_FROM:
        out.append(("toolbox", ["toolbox"], "0.0.1", f"1.fc{fedora}"))
    if night < REMOVED_FROM:
        out.append(("docker-latest", ["docker-latest"], "1.13.1", f"5.fc{fedora}"))
    return out


def commit_rpms(night: int, fedora: str, arch: str) -> list[tuple[str, int, str, str, str]]:
    """The binary rpms of ``night`` on ``arch`` as an rpm-ostree commit's package list
    names them (name, epoch, version, release, arch), sorted by name."""
    return sorted(
        (name, 0, version, release, arch)
        for _source, binaries, version, release in package_list(night, fedora)
        for name in binaries
    )


def write_rpms_json(
    compose_dir: Path,
    compose_id: str,
    *,
    night: int,
    fedora: str = "28",
    variant: str = "AtomicHost",
    arches: tuple[str, ...] = ("x86_64", "aarch64"),
) -> Path:
    """Write ``compose_dir/metadata/rpms.json`` for ``night`` with productmd's writer.

    Returns the file written.
    """
    from productmd.composeinfo import get_date_type_respin  # noqa: PLC0415 - heavy import

    rpms = productmd.rpms.Rpms()
    rpms.header.version = "1.2"
    rpms.compose.id = compose_id
    date, compose_type, respin = get_date_type_respin(compose_id)
    rpms.compose.date, rpms.compose.type, rpms.compose.respin = date, compose_type, respin
    for arch in arches:
        for source, binaries, version, release in package_list(night, fedora):
            srpm = nevra(source, version, release, "src")
            path = f"{variant}/source/tree/Packages/{source[0].lower()}/{source}.src.rpm"
            rpms.add(variant, arch, srpm, path, None, "source")
            for name in binaries:
                binary = nevra(name, version, release, arch)
                where = f"{variant}/{arch}/os/Packages/{name[0].lower()}/{name}.{arch}.rpm"
                rpms.add(variant, arch, binary, where, None, "binary", srpm)
    target = compose_dir / "metadata" / "rpms.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    rpms.dump(str(target))
    return target
