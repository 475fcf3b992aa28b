#!/bin/bash
# dracut module "ember": Ember in the place of Ignition in a systemd initramfs.
#
# It installs the same systemd units, targets and generator contract as Ignition's
# 30ignition module (same unit names, same command lines: /usr/bin/ignition is Ember under
# its `ignition` personality), so a distribution's own units that order themselves around
# ignition-*.service keep working.  Install it as modules.d/30ember and build with
# `dracut --add ember`, or rename the directory to 30ignition so that modules which depend on
# "ignition" pull it in.  Never install both: the unit names are the same.
#
# The ember binary comes from $EMBER_BINARY, this directory (ember), /usr/bin/ember or
# /usr/libexec/ember, in that order.  See docs/boot.md.

check() {
    # Like Ignition's: only when asked for (--add ember) or required by another module.
    return 255
}

depends() {
    local deps="systemd qemu"
    # Ember fetches by itself (no url-lib); the distribution's network module brings the
    # network up when fetch-offline asks for it, as with Ignition.
    if compgen -G "$dracutbasedir/modules.d/[0-9][0-9]network" > /dev/null; then
        deps="$deps network"
    fi
    echo "$deps"
    return 0
}

installkernel() {
    # fw_cfg for the qemu platform, Hyper-V KVP for azure, vsock for platforms that talk to
    # their host through it.
    hostonly='' instmods qemu_fw_cfg hv_utils vmw_vsock_virtio_transport
}

ember_binary() {
    local b
    for b in "${EMBER_BINARY:-}" "$moddir/ember" /usr/bin/ember /usr/libexec/ember; do
        if [[ -n $b && -f $b && -x $b ]]; then
            echo "$b"
            return 0
        fi
    done
    return 1
}

install() {
    local bin unit
    if ! bin=$(ember_binary); then
        dfatal "ember: no ember binary: set EMBER_BINARY, or put it in $moddir/ember or /usr/bin/ember"
        return 1
    fi
    inst_simple "$bin" /usr/bin/ember
    ln_r /usr/bin/ember /usr/bin/ignition

    # What the stages run, where the system has it (Ember itself does GPT, users and groups).
    inst_multiple -o \
        mkfs.ext4 mkfs.xfs mkfs.btrfs mkfs.fat mkfs.vfat mkswap wipefs mdadm cryptsetup \
        modprobe is-live-image /usr/sbin/ignition-kargs-helper \
        clevis clevis-decrypt clevis-decrypt-tang clevis-decrypt-tpm2 clevis-decrypt-sss \
        clevis-encrypt-tang clevis-encrypt-tpm2 clevis-encrypt-sss clevis-luks-bind \
        clevis-luks-common-functions clevis-luks-unlock jose curl
    inst_multiple mount
    # https:// sources need the system's certificate authorities.
    inst_multiple -o /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt \
        /etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem

    # As Ignition's module: udev's CD-ROM rule, so that config drives get their links
    # (Ember itself finds them without udev).
    inst_rules 60-cdrom_id.rules

    inst_script "$moddir/ember-generator" "$systemdutildir/system-generators/ember-generator"

    for unit in ignition-complete.target ignition-diskful.target \
        ignition-subsequent.target ignition-diskful-subsequent.target \
        ignition-fetch-offline.service ignition-fetch.service ignition-kargs.service \
        ignition-disks.service ignition-mount.service ignition-files.service \
        ignition-remount-sysroot.service; do
        inst_simple "$moddir/$unit" "$systemdsystemunitdir/$unit"
    done
    for unit in ignition-fetch-offline.service ignition-fetch.service ignition-kargs.service \
        ignition-disks.service ignition-mount.service ignition-files.service; do
        $SYSTEMCTL -q --root "$initdir" add-requires ignition-complete.target "$unit"
    done
    # Remounting /sysroot read-write only makes sense when there is a disk to provision.
    $SYSTEMCTL -q --root "$initdir" add-requires ignition-diskful.target \
        ignition-remount-sysroot.service
}
