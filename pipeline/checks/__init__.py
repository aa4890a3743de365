"""Fortnight's built-in image checks, run by a test battery as shell commands.

Run one check with ``python -m pipeline.checks NAME``; ``python -m pipeline.checks --list``
lists them. A test battery runs its commands once per image of a compose, with this
environment (the contract between the battery and every command it runs):

- ``FORTNIGHT_IMAGE``: local path of the image file
- ``FORTNIGHT_IMAGE_URL``: its download URL
- ``FORTNIGHT_IMAGE_FORMAT``: productmd format (``qcow2``, ``raw.xz``, ``iso``,
  ``vagrant-libvirt.box``, ``vagrant-virtualbox.box``, …)
- ``FORTNIGHT_IMAGE_TYPE``: productmd type (``qcow2``, ``raw-xz``, ``dvd-ostree``,
  ``vagrant-libvirt``, ``vagrant-virtualbox``, …)
- ``FORTNIGHT_IMAGE_ARCH``: productmd arch (``x86_64``, ``aarch64``, …)
- ``FORTNIGHT_IMAGE_SUBVARIANT``: productmd subvariant (``AtomicHost``, …)
- ``FORTNIGHT_IMAGE_SIZE``: size in bytes, from the compose manifest
- ``FORTNIGHT_IMAGE_SHA256``: sha256 (hex), from the compose manifest
- ``FORTNIGHT_IMAGE_VOLUME_ID``: ISO volume id, from the compose manifest (may be empty)
- ``FORTNIGHT_COMPOSE_ID``: the compose being tested
- ``FORTNIGHT_SCRATCH``: an empty scratch directory for this test

Which variables each check reads: ``checksum`` the image, size and sha256; ``qcow2``,
``xz`` the image; ``iso9660`` the image and volume id (compared only when non-empty);
``vagrant-box`` the image, and the type or format to know the provider; ``format`` the
image, format, type and volume id; ``name`` the image's file name, format and arch.

For manual use, options override the variables: ``--image PATH``, ``--url``, ``--format``,
``--type``, ``--arch``, ``--subvariant``, ``--size``, ``--sha256``, ``--volume-id``,
``--compose-id``, ``--scratch``.

Exit status and output:

- **0**, the check passed: one line on stdout saying what was verified.
- **1**, the image failed: one line on stdout saying why, naming the file and both values
  compared (``Fedora-AtomicHost-28.qcow2: qcow2 version is 7, expected 2 or 3``).
- **2**, the check could not run (unknown check, a variable it needs is unset or malformed,
  the image file is missing or unreadable): one line on stderr.

Checks read files in 1 MiB pieces, so memory stays constant whatever the image size.
Each check is a pure function (``check_qcow2(path)`` …) that returns the success line or
raises ``CheckFailed``; ``CHECKS`` maps command names to them.

Modules: :mod:`.common` (the errors), :mod:`.disk` (checksum, qcow2, xz), :mod:`.media`
(ISO 9660, Vagrant boxes), :mod:`.registry` (``CHECKS``, the inputs, by format and by
name), :mod:`.command` (the command line, ``main``).
"""
