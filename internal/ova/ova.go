// Package ova packages a stream-optimized VMDK as an OVA: an OVF 1.0
// descriptor, a SHA-256 manifest and the disk, in one USTAR archive.
//
// The order is the OVF specification's and it matters: vSphere and
// ovftool read an OVA as a stream, so the descriptor must come first (it
// says which files follow and how large they are), the manifest second,
// then the files in the order the descriptor references them.
//
// Every byte is fixed by the inputs: entry times come from the caller,
// owners are root with no names, and the descriptor has no timestamps or
// generated ids.
package ova

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/xml"
	"fmt"
	"io"
	"regexp"
	"text/template"
	"time"

	"github.com/keelos/keel/internal/vmdk"
)

// VM is the virtual machine the OVF describes.
type VM struct {
	Name      string // the VM's name and the stem of the file names
	CPUs      int
	MemoryMiB int    // a multiple of 4, VMware's granularity
	EFI       bool   // UEFI firmware instead of BIOS; arm64 has only UEFI
	Arch      string // "amd64" or "arm64"
}

// hardware is what differs between architectures. Controllers and NIC are
// those that both VMware offers and Debian's cloud kernel (keel's VM
// kernel) drives: it has no LSI Logic, AHCI or e1000 driver, but PVSCSI on
// amd64, NVMe on both, and VMXNET3. VMware has no PVSCSI on Arm.
type hardware struct {
	SystemType  string // vmx-14: ESXi 6.7 and later; Arm VMs need 19
	OSType      string // vSphere guest id
	OSDesc      string
	CtrlType    int // CIM resource type: 6 parallel SCSI HBA, 20 other storage
	CtrlSubType string
	CtrlDesc    string
	NeedsEFI    bool
}

var arches = map[string]hardware{
	"amd64": {
		SystemType:  "vmx-14",
		OSType:      "other4xLinux64Guest",
		OSDesc:      "Other 4.x or later Linux (64-bit)",
		CtrlType:    6,
		CtrlSubType: "VirtualSCSI",
		CtrlDesc:    "SCSI Controller",
	},
	"arm64": {
		SystemType:  "vmx-19",
		OSType:      "other5xLinux64Guest",
		OSDesc:      "Other 5.x or later Linux (64-bit Arm)",
		CtrlType:    20,
		CtrlSubType: "vmware.nvme.controller",
		CtrlDesc:    "NVMe Controller",
		NeedsEFI:    true,
	},
}

// Names go into file names inside the archive, into XML and into vSphere's
// inventory: a portable subset keeps all three simple and keeps the longest
// entry name within USTAR's 100 bytes.
var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// DiskFileName is the name the disk gets inside the OVA of the VM named
// name; give it to vmdk.Options.FileName so that the VMDK's descriptor
// names the file it is stored as.
func DiskFileName(name string) string { return name + "-disk1.vmdk" }

// Write writes NAME.ovf, NAME.mf and NAME-disk1.vmdk into an OVA on w.
// disk is a stream-optimized VMDK of vmdkSize bytes whose virtual capacity
// is capacity bytes; it is read three times: its tables, to check it is
// such a VMDK of that capacity, then all of it to hash it for the
// manifest, which precedes it, and again to copy it. Entries get mode
// 0644, owner 0:0 without names, and mtime truncated to the second (the
// Unix epoch when mtime is zero).
func Write(w io.Writer, vm VM, disk io.ReaderAt, vmdkSize, capacity int64, mtime time.Time) error {
	hw, ok := arches[vm.Arch]
	switch {
	case !validName.MatchString(vm.Name):
		return fmt.Errorf("ova: VM name %q: want 1 to 64 of A-Z a-z 0-9 . _ -, starting with a letter or digit", vm.Name)
	case !ok:
		return fmt.Errorf("ova: architecture %q: want amd64 or arm64", vm.Arch)
	case hw.NeedsEFI && !vm.EFI:
		return fmt.Errorf("ova: %s VMs boot only with EFI firmware", vm.Arch)
	case vm.CPUs < 1:
		return fmt.Errorf("ova: %d CPUs", vm.CPUs)
	case vm.MemoryMiB < 4 || vm.MemoryMiB%4 != 0:
		return fmt.Errorf("ova: memory of %d MiB: VMware wants a positive multiple of 4", vm.MemoryMiB)
	case vmdkSize <= 0:
		return fmt.Errorf("ova: VMDK size %d", vmdkSize)
	}
	// A mismatch between the descriptor and the disk would only surface
	// when vSphere imports the OVA, so check the disk here.
	d, err := vmdk.Open(disk, vmdkSize)
	if err != nil {
		return fmt.Errorf("ova: disk: %w", err)
	}
	if d.Size() != capacity {
		return fmt.Errorf("ova: capacity %d, but the VMDK's virtual size is %d", capacity, d.Size())
	}

	diskName := DiskFileName(vm.Name)
	diskSum, err := hashDisk(disk, vmdkSize)
	if err != nil {
		return err
	}
	var ovf bytes.Buffer
	if err := ovfTemplate.Execute(&ovf, ovfData{VM: vm, HW: hw, Disk: diskName, DiskSize: vmdkSize, Capacity: capacity}); err != nil {
		return fmt.Errorf("ova: descriptor: %w", err)
	}
	ovfSum := sha256.Sum256(ovf.Bytes())
	manifest := fmt.Sprintf("SHA256(%s.ovf)= %x\nSHA256(%s)= %x\n", vm.Name, ovfSum, diskName, diskSum)

	if mtime.IsZero() {
		mtime = time.Unix(0, 0)
	}
	mtime = time.Unix(mtime.Unix(), 0)
	cw := &countWriter{w: w}
	tw := tar.NewWriter(cw)
	entry := func(name string, size int64) error {
		err := tw.WriteHeader(&tar.Header{
			Typeflag: tar.TypeReg,
			Name:     name,
			Size:     size,
			Mode:     0o644,
			ModTime:  mtime,
			Format:   tar.FormatUSTAR, // what the OVF specification requires
		})
		if err != nil {
			return fmt.Errorf("ova: %s: %w", name, err)
		}
		return nil
	}
	if err := entry(vm.Name+".ovf", int64(ovf.Len())); err != nil {
		return err
	}
	if _, err := tw.Write(ovf.Bytes()); err != nil {
		return fmt.Errorf("ova: write descriptor: %w", err)
	}
	if err := entry(vm.Name+".mf", int64(len(manifest))); err != nil {
		return err
	}
	if _, err := io.WriteString(tw, manifest); err != nil {
		return fmt.Errorf("ova: write manifest: %w", err)
	}
	if err := entry(diskName, vmdkSize); err != nil {
		return err
	}
	// Hash the copy too: a disk that changed since the first pass would
	// leave a manifest that vSphere rejects.
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tw, h), io.NewSectionReader(disk, 0, vmdkSize))
	if err != nil {
		return fmt.Errorf("ova: write disk: %w", err)
	}
	if n != vmdkSize {
		return fmt.Errorf("ova: disk: read %d of %d bytes", n, vmdkSize)
	}
	if !bytes.Equal(h.Sum(nil), diskSum) {
		return fmt.Errorf("ova: disk changed while it was packaged")
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("ova: finish archive: %w", err)
	}
	// Fill the last 10 KiB record, as GNU tar and Python's tarfile do, for
	// readers that read whole records.
	if _, err := cw.Write(make([]byte, (record-cw.n%record)%record)); err != nil {
		return fmt.Errorf("ova: finish archive: %w", err)
	}
	return nil
}

const record = 20 * 512 // tar's default blocking factor

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func hashDisk(r io.ReaderAt, size int64) ([]byte, error) {
	h := sha256.New()
	n, err := io.Copy(h, io.NewSectionReader(r, 0, size))
	if err != nil {
		return nil, fmt.Errorf("ova: hash disk: %w", err)
	}
	if n != size {
		return nil, fmt.Errorf("ova: hash disk: read %d of %d bytes", n, size)
	}
	return h.Sum(nil), nil
}

type ovfData struct {
	VM       VM
	HW       hardware
	Disk     string
	DiskSize int64
	Capacity int64
}

func xmlEscape(s string) (string, error) {
	var b bytes.Buffer
	err := xml.EscapeText(&b, []byte(s))
	return b.String(), err
}

// The descriptor follows what VMware's tools write: RASD elements in
// alphabetical order, as the CIM schemas' sequences require and ovftool
// checks; firmware as a vmw:Config key, the form vSphere reads; a disk
// format URL that names stream-optimized VMDK. Secure Boot is stated off
// rather than left to vSphere's per-guest default, which could refuse an
// unsigned boot chain. Only vmxnet3 and the
// storage controller are declared: vSphere adds the rest (video, VMCI)
// itself, and a headless image needs no CD-ROM or USB.
var ovfTemplate = template.Must(template.New("ovf").Funcs(template.FuncMap{"x": xmlEscape}).Parse(`<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData">
  <References>
    <File ovf:href="{{x .Disk}}" ovf:id="file1" ovf:size="{{.DiskSize}}"/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:capacity="{{.Capacity}}" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <NetworkSection>
    <Info>The list of logical networks</Info>
    <Network ovf:name="VM Network">
      <Description>The VM Network network</Description>
    </Network>
  </NetworkSection>
  <VirtualSystem ovf:id="{{x .VM.Name}}">
    <Info>A virtual machine</Info>
    <Name>{{x .VM.Name}}</Name>
    <OperatingSystemSection ovf:id="101" vmw:osType="{{.HW.OSType}}">
      <Info>The kind of installed guest operating system</Info>
      <Description>{{.HW.OSDesc}}</Description>
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>{{x .VM.Name}}</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>{{.HW.SystemType}}</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>
        <rasd:Description>Number of Virtual CPUs</rasd:Description>
        <rasd:ElementName>{{.VM.CPUs}} virtual CPU(s)</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>{{.VM.CPUs}}</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>
        <rasd:Description>Memory Size</rasd:Description>
        <rasd:ElementName>{{.VM.MemoryMiB}}MB of memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>{{.VM.MemoryMiB}}</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:Description>{{.HW.CtrlDesc}}</rasd:Description>
        <rasd:ElementName>{{.HW.CtrlDesc}} 0</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>{{.HW.CtrlSubType}}</rasd:ResourceSubType>
        <rasd:ResourceType>{{.HW.CtrlType}}</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:ElementName>Hard Disk 1</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>4</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>
        <rasd:Connection>VM Network</rasd:Connection>
        <rasd:Description>VmxNet3 ethernet adapter on VM Network</rasd:Description>
        <rasd:ElementName>Ethernet 1</rasd:ElementName>
        <rasd:InstanceID>5</rasd:InstanceID>
        <rasd:ResourceSubType>VmxNet3</rasd:ResourceSubType>
        <rasd:ResourceType>10</rasd:ResourceType>
      </Item>
{{- if .VM.EFI}}
      <vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="efi"/>
      <vmw:Config ovf:required="false" vmw:key="bootOptions.efiSecureBootEnabled" vmw:value="false"/>
{{- else}}
      <vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="bios"/>
{{- end}}
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
`))
