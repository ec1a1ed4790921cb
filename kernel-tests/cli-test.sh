#!/bin/sh
# The guest suite through the pcibind tool (run by kernel-tests/init when /pcibind exists):
# each check runs the tool, compares its exit status with the documented one (README, `pcibind
# --help`) and asserts the real sysfs state afterwards. TAP output, like guest-test's.
NIC=0000:00:02.0
NIC2=0000:01:00.0
MF_NIC=0000:02:00.0   # the multifunction slot's functions, one IOMMU group
MF_HDA=0000:02:00.1
DEV=/sys/bus/pci/devices
n=0
failed=0

pcibind() { /pcibind --modprobe /sbin/modprobe --lock-dir /run/pcibind "$@"; }
drv() { [ -e "$DEV/$1/driver" ] && basename "$(readlink "$DEV/$1/driver")"; }
ovr() { cat "$DEV/$1/driver_override"; }
ifname() { ls "$DEV/$1/net" 2>/dev/null | head -n 1; }
group() { basename "$(readlink "$DEV/$1/iommu_group")"; }

# expect STATUS COMMAND...: runs it, output in /tmp/cli.out; fails unless it exits STATUS.
expect() {
    want=$1
    shift
    "$@" >/tmp/cli.out 2>&1
    got=$?
    [ "$got" = "$want" ] && return 0
    echo "$* exited $got, expected $want; it said:"
    cat /tmp/cli.out
    return 1
}
# state ADDRESS DRIVER OVERRIDE: the kernel's view of the device (DRIVER "" = unbound).
state() {
    d=$(drv "$1")
    o=$(ovr "$1")
    [ "$d" = "$2" ] && [ "$o" = "$3" ] && return 0
    echo "$1: driver '$d', driver_override '$o'; expected '$2', '$3'"
    return 1
}
at_rest() { state "$1" e1000e "(null)" && [ -n "$(ifname "$1")" ] || { echo "$1 has no interface"; return 1; }; }
said() { grep -q -- "$1" /tmp/cli.out || { echo "output lacks '$1':"; cat /tmp/cli.out; return 1; }; }
# json ADDRESS OUTCOME DRIVER ERROR: a --json result object (one a line) for ADDRESS with those
# values (DRIVER and ERROR as JSON: "vfio-pci" quoted, null bare).
json() {
    said "{\"address\": \"$1\", \"outcome\": \"$2\", \"driver\": $3, \"error\": $4," &&
    note "$(grep -F "\"address\": \"$1\"" /tmp/cli.out | sed 's/^ *//' | cut -c1-150)"
}
# note TEXT: a TAP comment printed after the check's result line.
note() { echo "# $*" >>/tmp/cli.notes; }
# owned NODE UID:GID MODE: the node's owner and mode (octal, as stat prints it), noted.
owned() {
    got=$(stat -c '%u:%g %a' "$1") || return 1
    note "$1: $got"
    [ "$got" = "$2 $3" ] || { echo "$1 is $got, expected $2 $3"; return 1; }
}

check() {  # check NAME: runs the shell function NAME as one TAP test
    n=$((n + 1))
    : >/tmp/cli.notes
    if out=$("$1" 2>&1); then
        echo "ok $n - cli: $1"
    else
        echo "not ok $n - cli: $1"
        echo "$out" | sed 's/^/#   /'
        failed=$((failed + 1))
    fi
    cat /tmp/cli.notes
}

# The saved override kernel-tests/init wrote and applied at start-up as the boot unit runs it
# (`pcibind --config-dir DIR apply ADDRESS`): what that did; then applied again (all, and by
# name), seen in status, and removed with the device given back.
CONF=/run/driverctl.d
applies_a_saved_override() {
    [ "$(cat $CONF/pci-$NIC2)" = vfio-pci ] || { echo "no saved override from init"; return 1; }
    # What init's `pcibind apply` at start-up did, before the C suite ran.
    [ "$(cat /tmp/boot-apply.rc)" = 0 ] && [ "$(cat /tmp/boot-apply.driver)" = vfio-pci ] &&
        grep -q "$NIC2: bound to vfio-pci, as saved" /tmp/boot-apply.out ||
        { echo "apply at start-up:"; cat /tmp/boot-apply.out; return 1; }
    expect 0 pcibind --config-dir $CONF list --persisted &&
    grep -q "^$NIC2  *vfio-pci  *e1000e  *no" /tmp/cli.out || { cat /tmp/cli.out; return 1; }
    expect 0 pcibind --config-dir $CONF apply && said "$NIC2: bound to vfio-pci, as saved" &&
    state $NIC2 vfio-pci vfio-pci && [ -d $DEV/$NIC2/vfio-dev ] &&
    expect 0 pcibind --config-dir $CONF apply $NIC2 && state $NIC2 vfio-pci vfio-pci &&
    expect 0 pcibind status && said "^$NIC2 8086:10d3 'Ethernet controller' drv=vfio-pci iommu_group=[0-9]* viable" &&
    expect 0 pcibind --config-dir $CONF reattach --persist $NIC2 && at_rest $NIC2 &&
    [ ! -e $CONF/pci-$NIC2 ] && expect 0 pcibind --config-dir $CONF apply && at_rest $NIC2
}

# Interface names for devices: the e1000e's, and virtio-net's, whose device link names the
# virtio device below the PCI function; an interface with no device is refused.
names_interfaces() {
    i=$(ifname $NIC)
    v=
    for d in /sys/class/net/*; do
        [ "$(basename "$(readlink "$d/device/subsystem")")" = virtio ] && v=${d##*/}
    done
    [ -n "$v" ] || { echo "no virtio-net interface"; return 1; }
    vpci=$(basename "$(dirname "$(readlink -f "/sys/class/net/$v/device")")")
    expect 0 pcibind show "$i" --json && said "\"address\": \"$NIC\"" &&
    expect 0 pcibind show "$v" --json && said "\"address\": \"$vpci\"" &&
    expect 2 pcibind show lo && said "has no device" &&
    expect 0 pcibind bind "$i" vfio-pci && state $NIC vfio-pci vfio-pci &&
    expect 0 pcibind reattach $NIC && at_rest $NIC
}

lists_and_shows() {
    expect 0 pcibind list && grep -q "^$NIC .*e1000e" /tmp/cli.out || { cat /tmp/cli.out; return 1; }
    expect 0 pcibind list --json && said "\"address\": \"$NIC\"" &&
    expect 0 pcibind show $NIC --json && said '"driver": "e1000e"' && said '"vfio_bound": false' &&
    expect 0 pcibind list --overrides && ! grep -q "$NIC" /tmp/cli.out
}

resolves_names() {
    expect 0 pcibind resolve vfio_pci && [ "$(cat /tmp/cli.out)" = vfio-pci ] &&
    expect 0 pcibind resolve i2c-i801 && [ "$(cat /tmp/cli.out)" = i801_smbus ] &&
    expect 4 pcibind resolve no_such_module && said "no PCI driver or module is named 'no_such_module'" &&
    said "Module no_such_module not found in directory" &&
    expect 2 pcibind resolve ../e1000e &&
    expect 0 pcibind variant $NIC && [ "$(cat /tmp/cli.out)" = vfio_pci ]
}

binds_to_the_best_vfio_driver_and_back() {
    g=$(group $NIC)
    expect 0 pcibind bind $NIC && state $NIC vfio-pci vfio-pci && [ -d $DEV/$NIC/vfio-dev ] &&
    owned /dev/vfio/"$g" 0:0 600 && owned /dev/vfio/vfio 0:0 666 &&
    expect 0 pcibind show $NIC --json && said '"vfio_bound": true' &&
    expect 0 pcibind list --overrides && said "$NIC" &&
    expect 0 pcibind reattach $NIC && at_rest $NIC && [ ! -e /dev/vfio/"$g" ]
}

dry_run_changes_nothing() {
    expect 0 pcibind bind $NIC vfio-pci --dry-run && said driver_override && at_rest $NIC
}

refuses_what_the_driver_does_not_claim() {
    expect 9 pcibind bind $NIC nvme && at_rest $NIC &&
    expect 9 pcibind bind --json $NIC nvme && json $NIC refused '"e1000e"' '"NOT_CLAIMED"' &&
    said '"message": "[^"]*nvme' && at_rest $NIC
}

rolls_back_a_real_refusal() {
    expect 6 pcibind bind $NIC serial --force && said restored && at_rest $NIC
}

refuses_an_interface_in_use() {
    i=$(ifname $NIC)
    ip link set "$i" up && ip addr add 10.0.2.16/24 dev "$i" || return 1
    expect 8 pcibind bind $NIC vfio-pci && said "$i" && at_rest $NIC &&
    expect 0 pcibind bind $NIC vfio-pci --force && state $NIC vfio-pci vfio-pci &&
    expect 0 pcibind reattach $NIC && at_rest $NIC
}

unbind_stays_unbound() {
    expect 0 pcibind unbind $NIC && state $NIC "" none &&
    echo $NIC >/sys/bus/pci/drivers_probe && state $NIC "" none &&
    expect 0 pcibind reattach $NIC && at_rest $NIC &&
    expect 0 pcibind bind $NIC none && state $NIC "" none &&
    expect 0 pcibind reattach $NIC && at_rest $NIC
}

two_devices_in_one_command() {
    expect 0 pcibind bind $NIC $NIC2 vfio-pci && state $NIC vfio-pci vfio-pci &&
    state $NIC2 vfio-pci vfio-pci &&
    expect 0 pcibind reattach $NIC $NIC2 && at_rest $NIC && at_rest $NIC2
}

two_processes_at_once() {
    pcibind bind $NIC vfio-pci >/tmp/a.out 2>&1 & a=$!
    pcibind bind $NIC2 vfio-pci >/tmp/b.out 2>&1 & b=$!
    wait $a || { cat /tmp/a.out; return 1; }
    wait $b || { cat /tmp/b.out; return 1; }
    state $NIC vfio-pci vfio-pci && state $NIC2 vfio-pci vfio-pci || return 1
    pcibind reattach $NIC >/tmp/a.out 2>&1 & a=$!
    pcibind reattach $NIC2 >/tmp/b.out 2>&1 & b=$!
    wait $a || { cat /tmp/a.out; return 1; }
    wait $b || { cat /tmp/b.out; return 1; }
    at_rest $NIC && at_rest $NIC2
}

bad_arguments() {
    expect 2 pcibind bind 0000:00:02 vfio-pci && expect 3 pcibind bind 0000:09:00.0 vfio-pci &&
    expect 4 pcibind --modprobe none bind $NIC no_such_driver && at_rest $NIC &&
    expect 4 pcibind bind $NIC $NIC2 no_such_driver && said "Module no_such_driver not found" &&
    expect 2 pcibind bind $NIC vfio-pci e1000e && at_rest $NIC &&
    expect 3 pcibind unbind $NIC 0000:09:00.0 && at_rest $NIC
}

# bind --owner (numeric ids: the initramfs has no /etc/passwd or /etc/group): the NIC's group
# node is given (owner only: the mode stays the kernel's 0600), and goes with the device on
# reattach. The multifunction slot's group: refused for one function, naming the other, with
# --json; given for both (--json); reattaching one function leaves the node (the other is
# still on vfio-pci), given back to root; the last one removes it. The character device
# /dev/vfio/devices/vfioN too where the kernel has one (CONFIG_VFIO_DEVICE_CDEV).
gives_the_vfio_nodes_to_an_owner() {
    [ ! -e /etc/passwd ] || note "this initramfs has an /etc/passwd"
    g=$(group $NIC)
    expect 0 pcibind bind $NIC vfio-pci --owner 4242:4243 && state $NIC vfio-pci vfio-pci &&
    said "/dev/vfio/$g.* given to 4242:4243" && owned /dev/vfio/"$g" 4242:4243 600 &&
    owned /dev/vfio/vfio 0:0 666 || return 1
    cdevs=0
    for c in "$DEV/$NIC"/vfio-dev/vfio*; do
        [ -e "/dev/vfio/devices/${c##*/}" ] || continue
        cdevs=$((cdevs + 1))
        owned "/dev/vfio/devices/${c##*/}" 4242:4243 600 || return 1
    done
    [ "$cdevs" -gt 0 ] || note "no /dev/vfio/devices/vfioN: this kernel has no VFIO character devices"
    expect 0 pcibind reattach $NIC && at_rest $NIC && [ ! -e /dev/vfio/"$g" ] || return 1
    mg=$(group $MF_NIC)
    [ "$(ls $DEV/$MF_NIC/iommu_group/devices)" = "$MF_NIC
$MF_HDA" ] || { echo "group $mg:" $(ls $DEV/$MF_NIC/iommu_group/devices); return 1; }
    hda=$(drv $MF_HDA)
    expect 2 pcibind bind --json --owner 4242:4243 $MF_NIC vfio-pci &&
    json $MF_NIC refused '"e1000e"' '"INVALID_ARG"' && said "vfio/$mg), which opens $MF_HDA too" &&
    at_rest $MF_NIC && state $MF_HDA "$hda" "(null)" && [ ! -e /dev/vfio/"$mg" ] &&
    expect 0 pcibind bind --json --owner 4242:4243 $MF_NIC $MF_HDA vfio-pci &&
    json $MF_NIC moved '"vfio-pci"' null && json $MF_HDA moved '"vfio-pci"' null &&
    owned /dev/vfio/"$mg" 4242:4243 600 &&
    expect 0 pcibind reattach $MF_NIC && said "/dev/vfio/$mg given back to root" && at_rest $MF_NIC &&
    owned /dev/vfio/"$mg" 0:0 600 &&
    expect 0 pcibind reattach $MF_HDA && state $MF_HDA "$hda" "(null)" && [ ! -e /dev/vfio/"$mg" ]
}

# Module loads as steps of the transaction (txn/load.rs) with the real modprobe: a bind whose
# target module is not loaded plans the load (a dry run loads nothing) and runs it; a reattach
# with no name loads the host module the alias tables name (e1000e unloaded while the NIC is on
# vfio-pci: its load also gives the other e1000e NICs their driver back).
loads_the_target_module_as_a_step() {
    /sbin/modprobe -r vfio_pci && [ ! -e /sys/module/vfio_pci ] || return 1
    expect 0 pcibind bind $NIC vfio-pci --dry-run && said "run /sbin/modprobe -b vfio_pci" &&
    note "$(grep modprobe /tmp/cli.out)" &&
    [ ! -e /sys/module/vfio_pci ] && at_rest $NIC &&
    expect 0 pcibind bind $NIC vfio-pci && state $NIC vfio-pci vfio-pci &&
    [ -e /sys/module/vfio_pci/drivers/pci:vfio-pci ]
}
loads_the_host_module_as_a_step() {
    state $NIC vfio-pci vfio-pci && /sbin/rmmod e1000e && state $NIC2 "" "(null)" || return 1
    expect 0 pcibind reattach $NIC --dry-run && said "run /sbin/modprobe -b e1000e" &&
    note "$(grep modprobe /tmp/cli.out)" &&
    [ ! -e /sys/module/e1000e ] && state $NIC vfio-pci vfio-pci &&
    expect 0 pcibind reattach $NIC && at_rest $NIC && at_rest $NIC2 && at_rest $MF_NIC
    rc=$?
    [ -e /sys/module/e1000e ] || /sbin/modprobe e1000e  # whatever a failure left behind
    return $rc
}

# SR-IOV through the tool (SPEC 3.10): VFs made parked, bound in parallel by one command,
# their removal refused while on vfio-pci and forced.
vfs_made_bound_and_removed() {
    pf=0000:03:00.0 vf1=0000:03:00.1 vf2=0000:03:00.2
    [ -e $DEV/$pf/sriov_totalvfs ] || { note "no SR-IOV device: nothing to check"; return 0; }
    # A dry run changes nothing; the files its plan names are there, but for the new VFs'.
    ap=$(cat $DEV/$pf/sriov_drivers_autoprobe)
    expect 0 pcibind sriov $pf 2 --dry-run && said "sriov_numvfs (create 2 VFs)" &&
    [ "$(cat $DEV/$pf/sriov_numvfs)" = 0 ] && [ "$(cat $DEV/$pf/sriov_drivers_autoprobe)" = "$ap" ] &&
    [ ! -e $DEV/$pf/virtfn0 ] && [ "$(drv $pf)" = nvme ] || return 1
    grep -o '/sys/[^ ,]*' /tmp/cli.out | sort -u >/tmp/sriov-plan
    [ "$(grep -c . /tmp/sriov-plan)" -ge 4 ] || { echo "plan paths:"; cat /tmp/sriov-plan; return 1; }
    while read -r p; do
        case $p in */virtfn*) [ ! -e "$p" ] ;; *) [ -e "$p" ] ;; esac ||
            { echo "plan path $p: unexpected"; return 1; }
    done </tmp/sriov-plan
    expect 0 pcibind sriov $pf 2 && [ "$(cat /tmp/cli.out)" = "$vf1
$vf2" ] || { cat /tmp/cli.out; return 1; }
    while read -r p; do [ -e "$p" ] || { echo "plan path $p is not there"; return 1; }; done </tmp/sriov-plan
    state $vf1 "" none && state $vf2 "" none &&
    expect 0 pcibind sriov $pf && [ "$(cat /tmp/cli.out)" = "$vf1
$vf2" ] &&
    expect 0 pcibind bind $vf1 $vf2 vfio-pci && said "$vf1" && said "$vf2" &&
    state $vf1 vfio-pci vfio-pci && state $vf2 vfio-pci vfio-pci &&
    expect 8 pcibind sriov $pf 0 && said vfio-pci && [ -e $DEV/$vf2 ] &&
    expect 0 pcibind sriov $pf 0 --force && [ ! -e $DEV/$vf1 ] && [ "$(drv $pf)" = nvme ]
    rc=$?
    echo 0 >$DEV/$pf/sriov_numvfs  # whatever a failure left behind
    return $rc
}

check applies_a_saved_override
check names_interfaces
check lists_and_shows
check resolves_names
check binds_to_the_best_vfio_driver_and_back
check dry_run_changes_nothing
check refuses_what_the_driver_does_not_claim
check rolls_back_a_real_refusal
check refuses_an_interface_in_use
check unbind_stays_unbound
check two_devices_in_one_command
check two_processes_at_once
check bad_arguments
check gives_the_vfio_nodes_to_an_owner
check loads_the_target_module_as_a_step
check loads_the_host_module_as_a_step
check vfs_made_bound_and_removed
echo "1..$n"
echo "# cli: $((n - failed)) passed, $failed failed"
[ "$failed" = 0 ]
