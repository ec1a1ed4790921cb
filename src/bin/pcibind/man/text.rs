//! The page's fixed sections, written in roff: the JSON shapes, the examples, the files (with
//! `@LOCKDIR@` for the configured lock directory) and what to see also.

pub(super) const JSON: &str = r#".SH "JSON OUTPUT"
With \fB\-\-json\fR, every key is always present, \fBnull\fR when unknown. IDs are lower\-case
hex strings, \fBclass\fR six hex digits, \fBiommu_group\fR a number.
.PP
\fBpcibind list \-\-json\fR prints an array of objects, one per device:
.PP
.RS 4
.nf
{"address": "0000:3b:00.2", "vendor": "15b3", "device": "101e",
 "class": "020000", "class_name": "Ethernet controller",
 "driver": "mlx5_core", "driver_override": null, "iommu_group": 7,
 "vfio_bound": false, "vfio_driver_module": "mlx5_vfio_pci"}
.fi
.RE
.TP
.B address
the device, \fIDDDD:BB:DD.F\fR
.TP
\fBvendor\fR, \fBdevice\fR, \fBclass\fR, \fBclass_name\fR
its IDs and class, from its \fBmodalias\fR
.TP
\fBdriver\fR, \fBdriver_override\fR
the driver it is bound to, and the \fBdriver_override\fR set on it (\fBnull\fR: unbound, unset)
.TP
.B iommu_group
its IOMMU group (\fBnull\fR without an IOMMU)
.TP
.B vfio_bound
\fBtrue\fR when it is on \fBvfio\-pci\fR or a VFIO variant driver
.TP
.B vfio_driver_module
the module of the VFIO driver \fBbind\fR would pick for it; \fBnull\fR for a bridge (host,
PCI, ISA/LPC: no group move moves one; the \fBVFIO DRIVER\fR column of \fBlist\fR shows
\fB\-\fR)
.PP
\fBpcibind show \fIADDRESS\fB \-\-json\fR prints one such object with six more keys:
.TP
.B modalias
the device's \fBmodalias\fR
.TP
.B iommu_group_members
an array of \fB{"address", "driver", "class"}\fR, one per member of its IOMMU group, with
\fBclass\fR one of \fBvfio\fR (on a VFIO driver), \fBharmless\fR (no driver, \fBpci\-stub\fR,
\fBpciback\fR, \fBpcieport\fR) or \fBblocking\fR
.TP
.B iommu_group_viable
\fBtrue\fR when no member is blocking, so the group can be assigned to a guest
.TP
.B in_use
why \fBbind\fR would refuse the device as in use on the host, or \fBnull\fR
.TP
.B in_use_kinds
how it is in use, an array of \fBnetwork\fR, \fBstorage\fR, \fBdisplay\fR, \fBvmm\fR (a
process holds its VFIO nodes) and \fBother\fR (mediated devices, or something that could not
be read); empty when it is not in use
.TP
.B vfio_device_nodes
an array of the device nodes a VMM opens for a device on a VFIO driver (\fB/dev/vfio/vfio\fR,
\fB/dev/vfio/\fIGROUP\fR, and with the VFIO character device \fB/dev/iommu\fR and
\fB/dev/vfio/devices/vfio\fIN\fR), empty otherwise
.TP
.B interrupted_transaction
the device's unfinished transaction (\fBinterrupted:\fR its caller died, and the next
command that touches the device, or \fBpcibind recover\fR, rolls it back; \fBrunning now:\fR
another caller holds the device), or \fBnull\fR
.PP
\fBpcibind status \-\-json\fR prints one object of three arrays of such \fBlist\fR objects,
each with three more keys, and a fourth array:
.TP
\fBvfio\fR, \fBhost\fR, \fBnone\fR
the devices on a VFIO driver, on a host driver, and on no driver
.TP
.B iommu_group_viable
as for \fBshow\fR (\fBnull\fR without an IOMMU group)
.TP
.B iommu_group_blocking
the addresses of the members of its IOMMU group on host drivers, which keep the group from a
guest (\fBnull\fR without an IOMMU group)
.TP
.B vmm_holders
for a device on a VFIO driver, an array of \fB{"pid", "command"}\fR, one per process that
has its group node or its VFIO character device open (a running VM, which keeps any move off
the VFIO driver from happening without \fB\-\-force\fR); \fBnull\fR for the other devices
.TP
.B interrupted
an array of \fB{"address", "transaction", "running"}\fR, one per device whose last
transaction did not finish (\fBrunning\fR: it still runs), or \fBnull\fR when the lock
directory cannot be read
.PP
\fBpcibind list \-\-persisted \-\-json\fR prints an array of objects, one per saved override:
.TP
.B saved_driver
the driver saved for the device (\fBnone\fR: unbound)
.TP
.B present
whether the device is there
.TP
.B driver
the driver it is on now (\fBnull\fR: unbound or not present)
.TP
.B applied
whether it is on its saved driver
.SS "JSON RESULTS"
\fBbind\fR, \fBunbind\fR, \fBreattach\fR, \fBapply\fR, \fBrecover\fR and \fBsriov\fR take
\fB\-\-json\fR: stdout is then one JSON array (always an array, as for \fBlist \-\-json\fR, even
for one device), one object per device in the order given, instead of the text lines and the
summary. Messages still go to stderr and the exit status is the same as without
\fB\-\-json\fR. Every key is always present:
.PP
.RS 4
.nf
$ pcibind bind \-\-json 0000:3b:00.2 0000:00:02.0
[
  {"address": "0000:3b:00.2", "outcome": "moved", "driver": "mlx5_vfio_pci",
   "error": null, "message": null, "plan": null, "group_moved": null},
  {"address": "0000:00:02.0", "outcome": "refused", "driver": "e1000e",
   "error": "IN_USE", "message": "0000:00:02.0 is in use on the host: ...",
   "plan": null, "group_moved": null}
]
$ echo $?
8
.fi
.RE
.TP
.B address
the device (\fBnull\fR when a refusal is about the command as a whole, such as a
\fIDRIVER\fR that resolves to no driver)
.TP
.B outcome
\fBmoved\fR (done, and the device's driver changed), \fBunchanged\fR (done: it was already
there), \fBplanned\fR (\fB\-\-dry\-run\fR: nothing changed), \fBrefused\fR (nothing was changed:
an argument, a safety check, the lock, the driver or its module stopped it), \fBrestored\fR
(the kernel did not bind and the device was put back where it was), \fBfailed\fR (anything
else: the device could not be put back, and the message says where it is; it disappeared; an
I/O error), \fBrolled_back\fR (\fBrecover\fR: its interrupted transaction was rolled back),
\fBpreset\fR (\fBapply \-\-overrides\-only\fR: the saved driver was written into the unbound
device's \fBdriver_override\fR; \fBunchanged\fR when it was there already or the device is bound);
\fBsriov\fR says \fBlisted\fR, \fBchanged\fR or \fBunchanged\fR
.TP
.B driver
the driver the device is on after the call (\fBnull\fR: unbound); for \fBplanned\fR, the
driver it would end on when the plan knows it
.TP
\fBerror\fR, \fBmessage\fR
the error's code name, as \fIpcibind.h\fR spells it after \fBPCIBIND_ERR_\fR
(\fBINVALID_ARG\fR, \fBINVALID_ADDRESS\fR, \fBNO_DEVICE\fR, \fBNO_DRIVER\fR,
\fBMODULE_LOAD\fR, \fBBIND\fR, \fBRESTORE\fR, \fBIN_USE\fR, \fBIO\fR, \fBBUSY\fR,
\fBINTERNAL\fR, \fBNOT_CLAIMED\fR, \fBUNSUPPORTED\fR), and what stderr says; both
\fBnull\fR on success
.TP
.B plan
a dry run's plan, an array of its lines
.TP
.B group_moved
with \fB\-\-group\fR, the members moved (or that would move)
.PP
A command refused before it touches any device (a malformed address, a device that does not
exist, a \fIDRIVER\fR that does not resolve) prints one \fBrefused\fR object per reason.
\fBsriov \-\-json\fR prints one object for the PF with \fBvfs\fR (its VFs after the call, or
\fBnull\fR) in place of \fBgroup_moved\fR; with \fB\-\-dry\-run\fR, \fBvfs\fR is \fBnull\fR,
\fBplan\fR holds the plan and the outcome is \fBplanned\fR. With \fBbind \-\-owner\fR, a
device bound whose VFIO nodes could not be given is \fBfailed\fR (\fBIO\fR, with the driver it
is on), and a dry run's \fBplan\fR ends with the give.
"#;

pub(super) const EXAMPLES: &str = r#".SH EXAMPLES
Every device, then those with a \fBdriver_override\fR (driverctl's list\-overrides):
.PP
.RS 4
.nf
pcibind list
pcibind list \-\-overrides
.fi
.RE
.PP
Give a ConnectX virtual function to the best VFIO driver for it (\fBmlx5_vfio_pci\fR when that
module exists, else \fBvfio\-pci\fR), looking at the plan first:
.PP
.RS 4
.nf
pcibind bind 0000:3b:00.2 \-\-dry\-run
pcibind bind 0000:3b:00.2
.fi
.RE
.PP
Bind two devices to a named driver, then give them back to their host drivers:
.PP
.RS 4
.nf
pcibind bind 0000:01:00.0 0000:01:00.1 vfio\-pci
pcibind reattach 0000:01:00.0 0000:01:00.1
.fi
.RE
.PP
Leave a device on no driver, so no probe takes it:
.PP
.RS 4
.nf
pcibind unbind 0000:03:00.0
.fi
.RE
.PP
Give a NIC to \fBvfio\-pci\fR by its interface name, for good: saved in
\fI/etc/driverctl.d\fR, applied again at boot; later, back to the host for good (by address:
the interface is gone while the NIC is on \fBvfio\-pci\fR):
.PP
.RS 4
.nf
pcibind bind \-\-persist eth1 vfio\-pci
pcibind list \-\-persisted
pcibind reattach \-\-persist 0000:01:00.0
.fi
.RE
.PP
Give a GPU and its audio function (one IOMMU group) to \fBvfio\-pci\fR for a QEMU that runs as
user \fBqemu\fR: \fI/dev/vfio/\fRGROUP and each \fI/dev/vfio/devices/vfio\fRN become
\fBqemu\fR's (mode 0600, as the kernel made them); later, back to the host and to root:
.PP
.RS 4
.nf
pcibind bind \-\-group \-\-owner qemu:kvm 0000:01:00.0
pcibind reattach \-\-group 0000:01:00.0
.fi
.RE
.PP
Which devices are where, and which IOMMU groups a guest could have:
.PP
.RS 4
.nf
pcibind status
.fi
.RE
.PP
Give an SR\-IOV NIC four virtual functions that no host driver takes (unbound, ready for
\fBpcibind bind\fR), looking first at the writes it makes and what a failure would put back:
.PP
.RS 4
.nf
pcibind sriov 0000:03:00.0 4 \-\-dry\-run
pcibind sriov 0000:03:00.0 4
.fi
.RE
.PP
What a name resolves to, and the VFIO driver a device would get:
.PP
.RS 4
.nf
pcibind resolve xe_vfio_pci
pcibind variant 0000:3b:00.2
pcibind show 0000:3b:00.2 \-\-json
.fi
.RE
"#;

pub(super) const FILES: &str = r#".SH FILES
.TP
.I /sys/bus/pci/
the devices and drivers acted on (\fB\-\-sysfs\-root\fR)
.TP
.IR /lib/modules/ release /modules.alias ", " modules.builtin.modinfo
the module tables the VFIO driver is chosen from (\fB\-\-modules\-dir\fR)
.TP
.I @LOCKDIR@/
one lock file per device, shared with every process using libpcibind (\fB\-\-lock\-dir\fR)
.TP
.IR /etc/driverctl.d/pci\- ADDRESS
a saved override: the driver's name and a newline, as driverctl writes it (\fB\-\-config\-dir\fR);
written by \fBbind \-\-persist\fR, removed by \fBreattach \-\-persist\fR, applied by \fBapply\fR
.TP
.IR 89\-pcibind.rules ", " pcibind@.service
the udev rule and systemd unit that run \fBpcibind apply\fR \fIADDRESS\fR when a PCI device
with a saved override appears, at boot and on hot\-plug (installed by meson with the tool;
driverctl's rule acts on the same files: keep one of the two)
.TP
.I pcibind\-early.service
the systemd unit that runs \fBpcibind apply \-\-overrides\-only\fR at boot, before udev's
coldplug loads any module: every saved driver is written into the \fIdriver_override\fR of its
device if no driver holds it, so a host driver loaded for an identical sibling device does not
bind it first (a driver the initramfs loaded has bound it already: the device's unit moves it)
.TP
.IR /dev/vfio/ GROUP ", " /dev/vfio/devices/vfio N
a device's VFIO nodes, root:root mode 0600 as the kernel creates them; \fBbind \-\-owner\fR
gives them to a user, \fBreattach\fR back to root (\fB\-\-dev\-root\fR elsewhere, for tests)
.TP
.IR bash\-completion/completions/pcibind ", " zsh/site\-functions/_pcibind ", " fish/vendor_completions.d/pcibind.fish
the shell completions, under the data directory (installed by meson with the tool; printed by
\fBpcibind completions\fR \fISHELL\fR)
.SH "SEE ALSO"
.BR driverctl (8),
.BR systemd.unit (5),
.BR udev (7),
.BR modprobe (8),
.BR lspci (8);
the C library libpcibind and its header \fIpcibind.h\fR, which documents every function;
the test kit for the unit tests of programs that use it, \fIpcibind\-testkit.h\fR (fake sysfs
trees, the kernel\-emulation shim \fIkernel\-shim.so\fR to preload and a fake modprobe, found
with \fBpkg\-config pcibind\-testkit\fR), whose tests can run this tool against a fake tree
with \fB\-\-sysfs\-root\fR.
"#;
