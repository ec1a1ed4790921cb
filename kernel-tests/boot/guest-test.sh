#!/bin/bash
# The boot test's checks, run by pcibind-boot-test.service in the booted Debian system
# (scripts/test-boot), after multi-user.target, on what systemd, udev, 89-pcibind.rules and
# pcibind@.service did at boot. Prints TAP lines on the serial console ("ok N - SCENARIO:
# what", "not ok ..."; "not ok ... # TODO reason" is a known issue), evidence as "# " lines,
# and "BOOT-DONE phase=N rc=R todo=T"; then reboots (phase 1 of a full run: QEMU runs with
# -no-reboot, so it exits and the host boots the same disk again) or powers off. The phase and
# the scope are on the kernel command line (pcibind.boot_phase=N pcibind.boot_scope=full|core).
#
# The devices (fixed addresses, scripts/kernel-lib.sh) and what the host saved for them in
# /etc/driverctl.d before the first boot:
#   0000:00:02.0  e1000e NIC            vfio-pci (e1000e, loaded for the other NICs, must not bind it)
#   0000:00:05.0  ICH9 HDA              vfio-pci (the second device)
#   0000:00:03.0  virtio-net            a malformed file (two lines)
#   0000:01:00.0  e1000e behind a port  nothing (the driverctl scenario saves one)
#   0000:00:07.0  PCI serial port       nothing (driverctl's set-override saves one)
# driverctl (Debian's package) is installed, its rule shadowed by a link to /dev/null in
# /etc/udev/rules.d, as the README says to let pcibind alone act.
set -u
exec </dev/null
phase=$(sed -n 's/.*pcibind\.boot_phase=\([0-9]*\).*/\1/p' /proc/cmdline)
# full: every scenario, then the reboot; core: the boot, the malformed file and the hot-plug,
# then power off (scripts/test-boot runs the second kernel so, for time).
scope=$(sed -n 's/.*pcibind\.boot_scope=\([a-z]*\).*/\1/p' /proc/cmdline)
NIC=0000:00:02.0 HDA=0000:00:05.0 VNET=0000:00:03.0 NIC2=0000:01:00.0 SER=0000:00:07.0
dev=/sys/bus/pci/devices conf=/etc/driverctl.d

n=0 failed=0 todo=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $*"; }
# check NAME CMD...: one TAP line for CMD's success.
check() { local name=$1; shift; if "$@"; then ok "$name"; else not_ok "$name"; fi; }
ev() { sed 's/^/#   /'; }
note() { echo "# [$(cut -d' ' -f1 /proc/uptime)] $*"; }

driver() { local l; l=$(readlink "$dev/$1/driver" 2>/dev/null) && echo "${l##*/}" || echo none; }
is_on() { [ "$(driver "$1")" = "$2" ]; }
override() { cat "$dev/$1/driver_override" 2>/dev/null || echo "(no device)"; }
# The network interfaces of a PCI function (virtio-net's are below its virtioN child).
ifaces() {
    local d out=
    for d in "$dev/$1"/net/* "$dev/$1"/virtio*/net/*; do [ -e "$d" ] && out+="${d##*/} "; done
    echo "${out% }"
}
no_iface() { [ -z "$(ifaces "$1")" ]; }
has_iface() { [ -n "$(ifaces "$1")" ]; }
unit_prop() { systemctl show -p "$2" --value "$1"; }
unit_result() { echo "$(unit_prop "$1" Result)/$(unit_prop "$1" ExecMainStatus)"; }
secs() { awk -v u="$1" 'BEGIN { printf "%.3f", u / 1e6 }'; }
# A unit's runs this boot, from PID 1's messages in the journal: "STARTS DONE FAILED" (systemd
# keeps no state of pcibind@ADDR.service once it ran: RemainAfterExit=no, and the inactive unit
# is unloaded). The journal is one file (journalctl 252 misses entries of a match across
# rotated files: the image sets RuntimeMaxFileSize), synced first.
MSG_STARTING=7d4958e842da4a758f6c1cdc7b36dcc5  # "Starting UNIT..."
MSG_DONE=39f53479d3a045ac8e11786248231fbf      # "Finished UNIT" (its start job done)
MSG_FAILED=be02cf6855d2428ba40df7e9d022f03d    # "Failed to start UNIT"
runs() {
    journalctl --sync 2>/dev/null
    journalctl -q -o cat --output-fields=MESSAGE_ID UNIT="$1" |
        awk -v a=$MSG_STARTING -v b=$MSG_DONE -v c=$MSG_FAILED \
            '$0 == a {s++} $0 == b {d++} $0 == c {f++} END {print s + 0, d + 0, f + 0}'
}
# ran_again UNIT BEFORE: UNIT started once more than in BEFORE (a "runs" answer) and ended.
ran_again() {
    local s d f s0 d0 f0
    read -r s d f <<<"$(runs "$1")"
    read -r s0 d0 f0 <<<"$2"
    [ "$s" -gt "$s0" ] && [ $((d + f)) -ge "$s" ]
}
# succeeded_again UNIT BEFORE: exactly one more run than BEFORE, and it succeeded.
succeeded_again() {
    local s d f s0 d0 f0
    read -r s d f <<<"$(runs "$1")"
    read -r s0 d0 f0 <<<"$2"
    [ "$s" = $((s0 + 1)) ] && [ "$d" = $((d0 + 1)) ] && [ "$f" = "$f0" ]
}
unit_log() { journalctl -q -o short-monotonic -u "$1"; }
# The journal (this boot's only: it is kept in memory) read once, then searched: each
# journalctl run costs about a second under emulation.
snapshot() { journalctl --sync 2>/dev/null; journalctl -q -o short-monotonic >/run/journal.txt; }
kernel_log() { grep ' kernel: ' /run/journal.txt; }
wait_for() {  # wait_for SECONDS CMD...: until CMD succeeds
    local end=$((SECONDS + $1)); shift
    until "$@"; do [ $SECONDS -lt "$end" ] || return 1; sleep 0.5; done
}
no_jobs() { ! systemctl list-jobs --no-legend | grep -qv pcibind-boot-test; }
settled() { udevadm settle --timeout=120; wait_for 120 no_jobs; }
# replug ADDRESS: hot-remove the device and rescan the bus, as a hot-plug adds it again (the
# kernel forgets its driver_override; a driver already loaded binds it as it is added).
replug() {
    echo 1 >"$dev/$1/remove"
    wait_for 30 test ! -e "$dev/$1" || return 1
    udevadm settle --timeout=60
    echo 1 >/sys/bus/pci/rescan
    wait_for 30 test -e "$dev/$1"
}
state() {  # one line per device, as evidence
    local a
    for a in "$@"; do
        echo "$a: driver $(driver "$a"), driver_override $(override "$a"), interfaces [$(ifaces "$a")], saved: $(cat "$conf/pci-$a" 2>/dev/null | tr '\n' '|' || echo -)"
    done | ev
}
finish() {
    echo "BOOT-DONE phase=$phase rc=$((failed > 0)) todo=$todo"
    sync
    # --force: no unit is stopped first (nothing here needs it), but processes are killed and
    # the file systems unmounted or made read-only, so what phase 1 changed is on the disk.
    if [ "$phase" = 1 ] && [ "$scope" = full ]; then systemctl --force reboot
    else systemctl --force poweroff; fi
    exit 0
}
trap finish EXIT

echo "BOOT-PHASE $phase $scope $(uname -r) systemd $(systemctl --version | sed -n '1s/^systemd \([0-9]*\).*/\1/p')"
settled || note "jobs still queued after 120 s: $(systemctl list-jobs --no-legend | tr '\n' ';')"
# Where the boot's time went (PID 1's clocks): the kernel and initramfs, then systemd.
note "boot: systemd started at $(secs "$(systemctl show -p UserspaceTimestampMonotonic --value)") s," \
    "udev coldplug done at $(secs "$(unit_prop systemd-udev-trigger.service ActiveEnterTimestampMonotonic)") s," \
    "basic.target at $(secs "$(unit_prop basic.target ActiveEnterTimestampMonotonic)") s," \
    "multi-user.target at $(secs "$(unit_prop multi-user.target ActiveEnterTimestampMonotonic)") s," \
    "checks start at $(awk '{print $1}' /proc/uptime) s"
snapshot
note "state after boot:"
state $NIC $HDA $VNET $NIC2 $SER
note "failed units: $(systemctl --failed --no-legend --plain | awk '{print $1}' | tr '\n' ' ')"

# ---- at every boot: the saved overrides, the malformed file, driverctl's rule shadowed ------
# pcibind-early.service: every saved override of an unbound device written into sysfs before
# udev's coldplug (systemd-udev-trigger.service) started, so before any add event could load a
# module. PID 1's clocks: the unit's exit, the trigger's start. (It ran before journald, so
# PID 1's messages about it went to the kernel log without fields: "runs" cannot count them;
# a oneshot that remains active after its exit ran once.)
EARLY=pcibind-early.service TRIGGER=systemd-udev-trigger.service
early_done=$(unit_prop $EARLY ExecMainExitTimestampMonotonic)
trigger_start=$(unit_prop $TRIGGER ExecMainStartTimestampMonotonic)
note "$EARLY: $(unit_result $EARLY), started at $(secs "$(unit_prop $EARLY ExecMainStartTimestampMonotonic)") s, exited at $(secs "$early_done") s; $TRIGGER started at $(secs "$trigger_start") s"
unit_log $EARLY | ev
check "early: $EARLY ran, succeeded, and exited before $TRIGGER started" \
    eval '[ "$(systemctl is-active $EARLY)" = active ] && [ "$(unit_result $EARLY)" = success/0 ] &&
          [ "$early_done" -gt 0 ] && [ "$trigger_start" -gt "$early_done" ]'
# What it wrote: the saved overrides of the unbound devices (the serial port's built-in driver
# holds it already, in phase 2: left to its pcibind@ unit); the malformed file is named, skipped.
early_said() { journalctl -q -o cat _SYSTEMD_UNIT=$EARLY | grep -qF -- "$1"; }
if [ "$phase" = 1 ]; then
    check "early: wrote vfio-pci into the driver_override of $NIC and $HDA" \
        eval 'early_said "$NIC: driver_override set to vfio-pci" &&
              early_said "$HDA: driver_override set to vfio-pci"'
else
    check "early: wrote $HDA's override, not $NIC's (nothing saved), left $SER (bound to serial)" \
        eval 'early_said "$HDA: driver_override set to vfio-pci" && ! early_said "$NIC:" &&
              early_said "$SER: bound to serial: driver_override not written"'
fi
check "early: named the malformed $conf/pci-$VNET with a warning and went on" \
    eval 'journalctl -q -o cat _SYSTEMD_UNIT=$EARLY | grep -F "$conf/pci-$VNET" | grep -q "warning: "'

if [ "$phase" = 1 ]; then
    check "at-boot: $NIC (e1000e) on vfio-pci, its driver_override vfio-pci" \
        eval 'is_on $NIC vfio-pci && [ "$(override $NIC)" = vfio-pci ]'
    check "at-boot: $NIC has no network interface" no_iface $NIC
    # e1000e was loaded at boot (its other NICs are bound) but never bound this one: the
    # kernel logs a line naming the device for every probe it makes.
    note "the kernel's e1000e lines:"
    kernel_log | grep -E 'e1000e' | ev
    check "at-boot: e1000e was loaded and bound its other NICs ($NIC2)" \
        eval 'kernel_log | grep -q "e1000e $NIC2" && is_on $NIC2 e1000e'
    # Who wrote the override and who loaded e1000e, in the order udevd's workers reported it
    # (the image logs the e1000e NICs' add events at debug level: 00-pcibind-boot-test.rules).
    note "udev: the rule's driver_override writes and the e1000e NICs' module loads, in order:"
    grep -E "89-pcibind.rules:[0-9]+ ATTR|($NIC|$NIC2|0000:02:00.0): Running built-in command \"kmod load\"|e1000e' is already loaded|Inserted module 'e1000e'" \
        /run/journal.txt | tee /run/udev-order | ev
    # The rule writes the override at the NIC's own add event, before that event's module
    # load; but the add event of another e1000e NIC can load e1000e before the NIC's event
    # reached the rule, and e1000e binds every device without an override as it registers.
    # pcibind-early.service wrote the override before udev's coldplug, so that never happens:
    # no kernel line of e1000e names the NIC (on a kernel line, the first word after the
    # driver's name is the device it probes).
    check "at-boot: e1000e never bound $NIC (no kernel line of e1000e names it)" \
        eval '! kernel_log | grep -q "e1000e $NIC"'
    # Whether this boot opened the window that the rule alone loses: e1000e registered (its
    # module init's first kernel line; registering, it binds every matching device without an
    # override, in bus order, this NIC first) before the rule wrote the NIC's override at its
    # add event. The journal's monotonic timestamps; scripts/test-boot counts these lines.
    t_reg=$(grep -m1 'kernel: e1000e: Intel(R) PRO/1000 Network Driver' /run/journal.txt |
        sed 's/^\[ *\([0-9.]*\)\].*/\1/')
    t_rule=$(grep -m1 "$NIC: .*89-pcibind.rules:[0-9]* ATTR" /run/journal.txt |
        sed 's/^\[ *\([0-9.]*\)\].*/\1/')
    window=$(awk -v a="$t_reg" -v b="$t_rule" 'BEGIN { print (a != "" && b != "" && a + 0 < b + 0) ? "yes" : "no" }')
    echo "# RACE-WINDOW $window: e1000e registered at ${t_reg:-?} s, the rule wrote $NIC's override at ${t_rule:-?} s"
    # snd_hda_intel says "no codecs found!" of each controller it probes here.
    note "snd_hda_intel's kernel lines: $(kernel_log | grep -c "snd_hda_intel 0000:02:00.1") about its twin 0000:02:00.1 (bound), $(kernel_log | grep -c "snd_hda_intel $HDA") about $HDA"
    check "at-boot: pcibind@$NIC.service ran once and succeeded" \
        eval '[ "$(runs pcibind@$NIC.service)" = "1 1 0" ]'
else
    check "reboot: $NIC (reattached with --persist before the reboot) on e1000e" is_on $NIC e1000e
    check "reboot: $NIC has its network interface again ($(ifaces $NIC))" has_iface $NIC
    check "reboot: nothing saved for $NIC, and pcibind@$NIC.service never started" \
        eval '[ ! -e $conf/pci-$NIC ] && [ "$(runs pcibind@$NIC.service)" = "0 0 0" ]'
    check "reboot: driver_override of $NIC unset" eval '[ "$(override $NIC)" = "(null)" ]'
fi
unit_log pcibind@$NIC.service | ev
check "at-boot: $HDA (HDA) on vfio-pci, pcibind@$HDA.service ran once and succeeded" \
    eval 'is_on $HDA vfio-pci && [ "$(runs pcibind@$HDA.service)" = "1 1 0" ]'
unit_log pcibind@$HDA.service | ev

# The malformed file: the rule writes nothing, the unit reports it (status 11), and the rest
# of the boot goes on (the devices above, multi-user.target reached, this test running).
unit_log pcibind@$VNET.service | ev
check "malformed: pcibind@$VNET.service ran once and failed with status 11" \
    eval '[ "$(runs pcibind@$VNET.service)" = "1 0 1" ] &&
          [ "$(unit_result pcibind@$VNET.service)" = exit-code/11 ]'
check "malformed: the journal names the file $conf/pci-$VNET" \
    eval 'journalctl -q -o cat _SYSTEMD_UNIT=pcibind@$VNET.service | grep -q "$conf/pci-$VNET"'
check "malformed: $VNET untouched (virtio-pci, driver_override unset, interface $(ifaces $VNET))" \
    eval 'is_on $VNET virtio-pci && [ "$(override $VNET)" = "(null)" ] && has_iface $VNET'
check "malformed: blocks nothing else (multi-user.target active, the only failed unit)" \
    eval '[ "$(systemctl is-active multi-user.target)" = active ] &&
          [ "$(systemctl --failed --no-legend --plain | awk "{print \$1}")" = pcibind@$VNET.service ]'

note "driverctl's rules, as Debian's package installs them: $(dpkg -L driverctl | grep '/rules.d/' | tr '\n' ' ')"
check "driverctl: its rule is shadowed (/etc/udev/rules.d/05-driverctl.rules -> /dev/null): no driverctl@ unit ran at boot" \
    eval '[ "$(readlink /etc/udev/rules.d/05-driverctl.rules)" = /dev/null ] &&
          [ -z "$(systemctl list-units --all --no-legend --plain "driverctl@*")" ]'

if [ "$phase" = 2 ]; then
    # What driverctl's set-override saved in phase 1, applied by pcibind at this boot: the
    # serial port's driver (8250_pci) is built in and bound it first; the unit moved it.
    unit_log pcibind@$SER.service | ev
    check "driverctl: $SER, saved by driverctl set-override, applied at boot by pcibind@$SER.service" \
        eval 'is_on $SER vfio-pci && [ "$(runs pcibind@$SER.service)" = "1 1 0" ]'
    check "driverctl: $NIC2 (its override removed before the reboot) on e1000e" \
        eval 'is_on $NIC2 e1000e && [ ! -e $conf/pci-$NIC2 ]'
    note "state at the end:"
    state $NIC $HDA $VNET $NIC2 $SER
    exit 0
fi

# ---- phase 1: a device added later is applied again -----------------------------------------
# e1000e is loaded now: it binds the NIC as the kernel adds it, before udev sees the device
# (README); the unit, started again by the rule at the add event, moves it.
before=$(runs pcibind@$NIC.service)
t=$(awk '{print $1}' /proc/uptime)
replug $NIC && wait_for 120 ran_again pcibind@$NIC.service "$before"
settled
snapshot
note "after remove + rescan of $NIC (the kernel's lines since, and the unit's):"
kernel_log | awk -v t="$t" '{ s = $0; gsub(/^\[ *|\].*/, "", s) } s + 0 > t + 0' |
    grep -E "$NIC|vfio" | ev
unit_log pcibind@$NIC.service | ev
state $NIC
check "hotplug: pcibind@$NIC.service started again by the add event, succeeded" \
    succeeded_again pcibind@$NIC.service "$before"
check "hotplug: $NIC back on vfio-pci, no network interface" \
    eval 'is_on $NIC vfio-pci && no_iface $NIC'

[ "$scope" = full ] || exit 0

# ---- phase 1: driverctl beside pcibind ---------------------------------------------------------
# (a) pcibind reads what driverctl saves: set-override binds and saves; list --persisted shows
# it applied. Then the device goes back to its driver, the file stays (for the masked case and
# for phase 2).
driverctl set-override $SER vfio-pci 2>&1 | ev
pcibind list --persisted 2>&1 | ev
check "driverctl: set-override $SER vfio-pci saved a file pcibind lists as applied" \
    eval 'is_on $SER vfio-pci && pcibind list --persisted --json 2>/dev/null | tr -d " \n" |
          grep -q "\"address\":\"$SER\",\"saved_driver\":\"vfio-pci\",\"present\":true,\"driver\":\"vfio-pci\",\"applied\":true"'
driverctl --nosave unset-override $SER 2>&1 | ev
check "driverctl: unset-override --nosave gave $SER back to serial, the file stays" \
    eval 'is_on $SER serial && [ -f $conf/pci-$SER ]'

# (b) Both rules active (the shadow removed): at an add event of a device with a saved file
# both units start, driverctl@pci-ADDR.service and pcibind@ADDR.service, at the same time.
rm /etc/udev/rules.d/05-driverctl.rules
udevadm control --reload
pcibind bind --persist $NIC2 2>&1 | ev
before=$(runs pcibind@$NIC2.service)
replug $NIC2 && wait_for 120 ran_again pcibind@$NIC2.service "$before" &&
    wait_for 60 ran_again driverctl@pci-$NIC2.service "0 0 0"
settled
note "both rules active, after remove + rescan of $NIC2:"
unit_log pcibind@$NIC2.service | ev
unit_log driverctl@pci-$NIC2.service | ev
state $NIC2
note "runs (started finished failed): pcibind@ $(runs pcibind@$NIC2.service), driverctl@ $(runs driverctl@pci-$NIC2.service); $NIC2 ended on $(driver $NIC2)"
check "driverctl: with both rules active, driverctl@pci-$NIC2.service and pcibind@$NIC2.service both ran" \
    eval 'ran_again pcibind@$NIC2.service "$before" && ran_again driverctl@pci-$NIC2.service "0 0 0"'
pcibind reattach --persist $NIC2 2>&1 | ev
check "driverctl: reattach --persist $NIC2 gave it back to e1000e, file removed" \
    eval 'is_on $NIC2 e1000e && [ ! -e $conf/pci-$NIC2 ]'

# (c) driverctl alone: pcibind@.service masked, as the README says to let driverctl act.
systemctl mask pcibind@.service 2>&1 | ev
replug $SER && wait_for 120 ran_again driverctl@pci-$SER.service "0 0 0"
settled
sleep 2
note "pcibind@.service masked, after remove + rescan of $SER:"
unit_log driverctl@pci-$SER.service | ev
state $SER
check "driverctl: pcibind@.service masked: driverctl@pci-$SER.service alone ran, $SER on vfio-pci" \
    eval '[ "$(runs driverctl@pci-$SER.service)" = "1 1 0" ] &&
          [ "$(runs pcibind@$SER.service)" = "0 0 0" ] && is_on $SER vfio-pci'
systemctl unmask pcibind@.service 2>&1 | ev
ln -s /dev/null /etc/udev/rules.d/05-driverctl.rules
udevadm control --reload
# Back on its built-in driver for the next boot, the file kept: pcibind must move it there.
pcibind reattach $SER 2>&1 | ev

# ---- phase 1: reattach --persist, then the reboot (phase 2 checks it) ------------------------
pcibind reattach --persist $NIC 2>&1 | ev
check "reattach: reattach --persist $NIC: on e1000e with an interface, file removed" \
    eval 'is_on $NIC e1000e && has_iface $NIC && [ ! -e $conf/pci-$NIC ]'
note "state before the reboot:"
state $NIC $HDA $VNET $NIC2 $SER
exit 0
