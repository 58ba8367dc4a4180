import {
  isErr,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  O_RDWR,
  POLLIN,
  PROT_READ,
  PROT_WRITE,
  VFIO_CHECK_EXTENSION,
  VFIO_DEVICE_GET_INFO,
  VFIO_DEVICE_GET_IRQ_INFO,
  VFIO_DEVICE_GET_REGION_INFO,
  VFIO_DEVICE_SET_IRQS,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_GET_API_VERSION,
  VFIO_GROUP_FLAGS_VIABLE,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_GET_STATUS,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_IOMMU_DISABLE,
  VFIO_IOMMU_ENABLE,
  VFIO_IOMMU_GET_INFO,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_SPAPR_TCE_GET_INFO,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_IRQ_SET_DATA_NONE,
  VFIO_PCI_BAR0_REGION_INDEX,
  VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_PCI_MSI_IRQ_INDEX,
  VFIO_SET_IOMMU,
  VFIO_SPAPR_TCE_IOMMU,
  VFIO_TYPE1_IOMMU,
  vfio_device_info,
  vfio_group_status,
  vfio_iommu_spapr_tce_info,
  vfio_iommu_type1_dma_map,
  vfio_iommu_type1_dma_unmap,
  vfio_iommu_type1_info,
  vfio_irq_info,
  vfio_irq_set,
  vfio_region_info,
} from '../uapi/index.ts';
import type { Proc, Session } from './session.ts';
import type { Step } from './steplog.ts';

/*
 * The demo's program: what a VMM does with a device, step by step. Root
 * hands the device to vfio-pci; a process runs the canonical sequence of
 * the kernel's VFIO documentation (container, group, IOMMU, DMA mapping,
 * device fd); then it drives QEMU's edu device: a DMA from its memory
 * into the device and back, through the IOMMU, completion signalled by an
 * MSI on an eventfd, and a DMA to an IOVA it never mapped, which the IOMMU
 * refuses. Each step's explanation is written here; what it changed is
 * computed (see steplog.ts).
 */
export interface DemoResult {
  /** the whole flow ran */
  completed: boolean;
  stoppedAt: string | undefined;
  dmaVerified: boolean;
  msis: number;
  faults: string[];
  /** live kernel objects after exit equal those before the process started */
  baseline: boolean;
  leaked: Record<string, number>;
}

class Stop extends Error {
  constructor(readonly step: Step | undefined) {
    super('step failed');
  }
}

const EDU_ID_REG = 0x00;
const EDU_STATUS_ACK = 0x64;
const EDU_DMA_SRC = 0x80;
const EDU_DMA_DST = 0x88;
const EDU_DMA_CNT = 0x90;
const EDU_DMA_CMD = 0x98;
const EDU_CMD_START = 0x1;
const EDU_CMD_TO_RAM = 0x2;
const EDU_CMD_IRQ = 0x4;
const EDU_BUFFER = 0x40000n;
const DMA_SIZE = 1n << 20n;
const XFER = 4096;

export function demoDevice(s: Session): { bdf: string; group: number; edu: boolean } {
  const devs = s.opts.desc.devices;
  const d = devs.find((x) => x.model === 'edu') ?? devs.find((x) => x.driver !== 'e1000e') ?? devs[0];
  if (d === undefined) throw new Error('the host has no PCI device to give to vfio-pci');
  const group = s.host.device(d.bdf)?.iommu_group?.id;
  if (group === undefined) throw new Error(`${d.bdf} has no IOMMU group`);
  return { bdf: d.bdf, group, edu: d.model === 'edu' };
}

export function runDemoFlow(s: Session, section: (title: string) => void): DemoResult {
  const res: DemoResult = {
    completed: false,
    stoppedAt: undefined,
    dmaVerified: false,
    msis: 0,
    faults: [],
    baseline: false,
    leaked: {},
  };
  const rec = s.recorder;
  const { bdf, group, edu } = demoDevice(s);
  const ppc = s.arch === 'ppc64';
  const hex = (v: number | bigint): string => `0x${v.toString(16)}`;
  const need = <T extends number | bigint>(ret: T): T => {
    if (isErr(ret)) throw new Stop(rec.steps[rec.steps.length - 1]);
    return ret;
  };

  /* ---- 1. root: hand the device to vfio-pci ---- */
  section(`1. root hands ${bdf} to vfio-pci`);
  const before = s.host.device(bdf)?.driver?.name;
  if (before !== 'vfio-pci') {
    rec.explainNext((r) =>
      isErr(r)
        ? []
        : [
            `${before === undefined ? '' : `${before} lets go of the device; `}driver_override + drivers_probe: vfio_pci_probe -> vfio_add_group_dev`,
            `vfio_create_group made /dev/vfio/${group}; the device joined the group's device_list`,
          ],
    );
    need(
      s.admin(`bind ${bdf} -> vfio-pci (driver_override, drivers_probe)`, () => s.host.bind(bdf, 'vfio-pci')),
    );
  }
  const baseline = { ...s.host.liveObjects() };

  const { raw, sys } = s.spawn();
  let exited = false;
  try {
    canonical(sys);
  } catch (e) {
    if (!(e instanceof Stop)) throw e;
    res.stoppedAt = e.step?.call;
    s.checkpoint();
  }
  /* whatever happened, the process exits: every fd closes, as at the end of a VMM */
  section('4. the process exits');
  rec.explainNext([
    'do_exit: exit_mm drops the address space (unpinning what VFIO pinned), then exit_files closes every fd',
  ]);
  rec.step(
    'exit_group(0)',
    () => {
      raw.exit();
      exited = true;
      return 0;
    },
    { pid: raw.pid, comm: 'vfio-demo' },
  );
  const after = s.host.liveObjects();
  res.leaked = {};
  for (const k of new Set([...Object.keys(baseline), ...Object.keys(after)])) {
    const d = (after[k] ?? 0) - (baseline[k] ?? 0);
    if (d !== 0) res.leaked[k] = d;
  }
  res.baseline = exited && Object.keys(res.leaked).length === 0;
  res.faults = s.host.dmesg().filter((l) => /fault (addr|at)/i.test(l));
  return res;

  function canonical(p: Proc): void {
    const arg = need(p.mmap(0n, p.pageSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0n));
    const scratch = arg + 0x800n;

    section('2. the canonical sequence (Documentation/driver-api/vfio.rst)');
    rec.explainNext(["vfio_fops_open: a new vfio_container (kref 1) becomes the file's private_data"]);
    const container = need(p.open('/dev/vfio/vfio', O_RDWR));
    rec.explainNext(['VFIO_API_VERSION is 0']);
    need(p.ioctl(container, VFIO_GET_API_VERSION));
    const type = ppc ? VFIO_SPAPR_TCE_IOMMU : VFIO_TYPE1_IOMMU;
    const backend = ppc ? 'vfio_iommu_spapr_tce' : 'vfio_iommu_type1';
    rec.explainNext((r) => [
      r === 1
        ? `vfio_ioctl_check_extension asks each driver on vfio.iommu_drivers_list: ${backend} supports it`
        : `no driver on vfio.iommu_drivers_list supports it: ${backend} is not loaded in this build`,
    ]);
    if (need(p.ioctl(container, VFIO_CHECK_EXTENSION, type)) !== 1) throw new Stop(rec.steps.at(-1));

    rec.explainNext([
      `vfio_group_fops_open: vfio_group_get_from_minor finds the group; group->opened 0 -> 1`,
    ]);
    const grp = need(p.open(`/dev/vfio/${group}`, O_RDWR));
    p.mem.write(arg, vfio_group_status.encode({ argsz: vfio_group_status.size }));
    rec.explainNext(() => {
      const f = vfio_group_status.decode(p.mem.read(arg, vfio_group_status.size)).flags;
      return [
        f & VFIO_GROUP_FLAGS_VIABLE
          ? 'VIABLE: every device of the IOMMU group is bound to vfio-pci (or to no driver)'
          : 'NOT viable: a device of the group is still bound to a host driver',
      ];
    });
    need(p.ioctl(grp, VFIO_GROUP_GET_STATUS, arg));
    if (!(vfio_group_status.decode(p.mem.read(arg, 8)).flags & VFIO_GROUP_FLAGS_VIABLE))
      throw new Stop(rec.steps.at(-1));

    p.mem.write(arg, new Uint8Array(new Int32Array([container]).buffer));
    rec.explainNext([
      "vfio_group_set_container: the group joins the container's group_list; it holds a container kref and counts a container user",
    ]);
    need(p.ioctl(grp, VFIO_GROUP_SET_CONTAINER, arg));

    rec.explainNext([
      `vfio_ioctl_set_iommu: ${backend} answers CHECK_EXTENSION, its open() makes the iommu_data,`,
      `__vfio_container_attach_groups attaches every group (${ppc ? 'tce_iommu_attach_group -> iommu_take_ownership' : 'a domain per group'})`,
    ]);
    need(p.ioctl(container, VFIO_SET_IOMMU, type));

    let iova = 0n;
    if (ppc) {
      p.mem.write(arg, vfio_iommu_spapr_tce_info.encode({ argsz: vfio_iommu_spapr_tce_info.size }));
      rec.explainNext(() => {
        const i = vfio_iommu_spapr_tce_info.decode(p.mem.read(arg, vfio_iommu_spapr_tce_info.size));
        return [`the 32-bit DMA window: ${hex(i.dma32_window_start)} + ${hex(i.dma32_window_size)}`];
      });
      need(p.ioctl(container, VFIO_IOMMU_SPAPR_TCE_GET_INFO, arg));
      iova = BigInt(
        vfio_iommu_spapr_tce_info.decode(p.mem.read(arg, vfio_iommu_spapr_tce_info.size)).dma32_window_start,
      );
      rec.explainNext([
        'tce_iommu_enable: the whole window is charged to locked_vm (RLIMIT_MEMLOCK) up front',
      ]);
      need(p.ioctl(container, VFIO_IOMMU_ENABLE));
    } else {
      p.mem.write(arg, vfio_iommu_type1_info.encode({ argsz: vfio_iommu_type1_info.size }));
      rec.explainNext(() => {
        const i = vfio_iommu_type1_info.decode(p.mem.read(arg, vfio_iommu_type1_info.size));
        const min = i.iova_pgsizes & -i.iova_pgsizes;
        return [
          `the smallest IOMMU page is ${min >= 1024n ? `${min / 1024n} KiB` : `${min} bytes`}: every map and unmap is aligned to it`,
        ];
      });
      need(p.ioctl(container, VFIO_IOMMU_GET_INFO, arg));
    }

    rec.explainNext(['1 MiB of anonymous memory: the buffer the device will DMA to and from']);
    const vaddr = need(p.mmap(0n, DMA_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0n));
    p.mem.write(
      arg,
      vfio_iommu_type1_dma_map.encode({
        argsz: vfio_iommu_type1_dma_map.size,
        flags: VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
        vaddr,
        iova,
        size: DMA_SIZE,
      }),
    );
    rec.explainNext([
      ppc
        ? 'tce_iommu_map_dma: each 4 KiB IOMMU page of the buffer is pinned and its TCE written (read|write)'
        : 'vfio_dma_do_map: the pages are pinned (charged to locked_vm) and mapped at the IOVA in every domain',
    ]);
    need(p.ioctl(container, VFIO_IOMMU_MAP_DMA, arg));

    p.mem.write(arg, new TextEncoder().encode(`${bdf}\0`));
    rec.explainNext([
      'vfio_group_get_device_fd: vfio_pci_open enables the device; an anon-inode [vfio-device] file holds the vfio_device',
    ]);
    const dev = need(p.ioctl(grp, VFIO_GROUP_GET_DEVICE_FD, arg));

    p.mem.write(arg, vfio_device_info.encode({ argsz: vfio_device_info.size }));
    need(p.ioctl(dev, VFIO_DEVICE_GET_INFO, arg));
    p.mem.write(
      arg,
      vfio_region_info.encode({ argsz: vfio_region_info.size, index: VFIO_PCI_BAR0_REGION_INDEX }),
    );
    rec.explainNext(['BAR0: the device registers, read and written at this offset of the device fd']);
    need(p.ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, arg));
    const bar0 = vfio_region_info.decode(p.mem.read(arg, vfio_region_info.size)).offset;
    p.mem.write(
      arg,
      vfio_region_info.encode({ argsz: vfio_region_info.size, index: VFIO_PCI_CONFIG_REGION_INDEX }),
    );
    need(p.ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, arg));
    const cfg = vfio_region_info.decode(p.mem.read(arg, vfio_region_info.size)).offset;
    p.mem.write(arg, vfio_irq_info.encode({ argsz: vfio_irq_info.size, index: VFIO_PCI_MSI_IRQ_INDEX }));
    need(p.ioctl(dev, VFIO_DEVICE_GET_IRQ_INFO, arg));

    if (!edu) {
      section('3. (skipped: the device is not an edu, there is no DMA engine to drive)');
      return;
    }

    /* ---- 3. the edu device: DMA through the IOMMU, MSI on an eventfd ---- */
    section('3. edu: a DMA through the IOMMU, completion by MSI on an eventfd');
    const rd32 = (off: bigint): number => {
      need(p.pread(dev, scratch, 4, off));
      return new DataView(p.mem.read(scratch, 4).buffer).getUint32(0, true);
    };
    const REGS: Record<number, string> = {
      [EDU_DMA_SRC]: 'DMA source address',
      [EDU_DMA_DST]: 'DMA destination address',
      [EDU_DMA_CNT]: 'DMA transfer count',
      [EDU_DMA_CMD]: 'DMA command',
      [EDU_STATUS_ACK]: 'interrupt acknowledge',
    };
    const wr = (off: bigint, value: bigint, size: 2 | 4 | 8): void => {
      const reg = off >= bar0 && off < bar0 + 0x100000n ? REGS[Number(off - bar0)] : undefined;
      if (reg !== undefined) rec.explainNext((r) => (isErr(r) ? [] : [`edu ${reg} := ${hex(value)}`]));
      const b = new Uint8Array(size);
      const dv = new DataView(b.buffer);
      if (size === 2) dv.setUint16(0, Number(value), true);
      else if (size === 4) dv.setUint32(0, Number(value), true);
      else dv.setBigUint64(0, value, true);
      p.mem.write(scratch, b);
      need(p.pwrite(dev, scratch, size, off));
    };
    rec.explainNext(() => [
      `identification register: ${hex(new DataView(p.mem.read(scratch, 4).buffer).getUint32(0, true))} (edu 1.0)`,
    ]);
    rd32(bar0 + BigInt(EDU_ID_REG));
    need(p.pread(dev, scratch, 2, cfg + 4n));
    const cmd = new DataView(p.mem.read(scratch, 2).buffer).getUint16(0, true);
    rec.explainNext(['PCI_COMMAND |= MEMORY | MASTER: bus mastering on, so the device may DMA']);
    wr(cfg + 4n, BigInt(cmd | 0x6), 2);

    rec.explainNext(['an eventfd for the MSI: the kernel signals it from the interrupt handler']);
    const efd = need(p.eventfd(0, 0));
    const set = new Uint8Array(vfio_irq_set.size + 4);
    vfio_irq_set.encode(
      {
        argsz: set.length,
        flags: VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
        index: VFIO_PCI_MSI_IRQ_INDEX,
        start: 0,
        count: 1,
      },
      set,
    );
    new DataView(set.buffer).setInt32(vfio_irq_set.size, efd, true);
    p.mem.write(arg, set);
    rec.explainNext(['vfio_msi_enable: MSI on in the device, vector 0 wired to the eventfd']);
    need(p.ioctl(dev, VFIO_DEVICE_SET_IRQS, arg));

    const pattern = new Uint8Array(XFER);
    for (let i = 0; i < XFER; i++) pattern[i] = (i * 7 + 13) & 0xff;
    p.mem.write(vaddr, pattern);
    const dma = (src: bigint, dst: bigint, toRam: boolean, what: string): void => {
      wr(bar0 + BigInt(EDU_DMA_SRC), src, 8);
      wr(bar0 + BigInt(EDU_DMA_DST), dst, 8);
      wr(bar0 + BigInt(EDU_DMA_CNT), BigInt(XFER), 8);
      rec.explainNext([what]);
      wr(bar0 + BigInt(EDU_DMA_CMD), BigInt(EDU_CMD_START | EDU_CMD_IRQ | (toRam ? EDU_CMD_TO_RAM : 0)), 8);
      rec.explainNext([
        'the process sleeps; the virtual clock runs 100 ms to the transfer, then the device raises its MSI',
      ]);
      need(p.poll([{ fd: efd, events: POLLIN }], 1000));
      rec.explainNext(() => {
        const n = new DataView(p.mem.read(scratch, 8).buffer).getBigUint64(0, true);
        res.msis += Number(n);
        return [`eventfd counter ${n}: one MSI`];
      });
      need(p.read(efd, scratch, 8));
      wr(bar0 + BigInt(EDU_STATUS_ACK), 0x100n, 4);
    };
    dma(iova, EDU_BUFFER, false, `DMA ${XFER} bytes: IOVA ${hex(iova)} (our buffer) -> device buffer`);
    dma(EDU_BUFFER, iova + 0x1000n, true, `DMA back: device buffer -> IOVA ${hex(iova + 0x1000n)}`);
    const back = p.mem.read(vaddr + 0x1000n, XFER);
    res.dmaVerified = back.every((b, i) => b === pattern[i]);
    const unmapped = iova + (64n << 20n);
    dma(
      EDU_BUFFER,
      unmapped,
      true,
      `DMA to IOVA ${hex(unmapped)}, which was never mapped: the IOMMU must refuse it`,
    );
    s.checkpoint();

    /* ---- teardown, as a VMM does before it exits ---- */
    section('teardown');
    const off = new Uint8Array(vfio_irq_set.size);
    vfio_irq_set.encode(
      {
        argsz: off.length,
        flags: VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
        index: VFIO_PCI_MSI_IRQ_INDEX,
        start: 0,
        count: 0,
      },
      off,
    );
    p.mem.write(arg, off);
    rec.explainNext(['count 0: MSI off, the eventfd let go']);
    need(p.ioctl(dev, VFIO_DEVICE_SET_IRQS, arg));
    p.mem.write(
      arg,
      vfio_iommu_type1_dma_unmap.encode({ argsz: vfio_iommu_type1_dma_unmap.size, iova, size: DMA_SIZE }),
    );
    rec.explainNext(['the mapping goes, its pages are unpinned and locked_vm given back']);
    need(p.ioctl(container, VFIO_IOMMU_UNMAP_DMA, arg));
    if (ppc) need(p.ioctl(container, VFIO_IOMMU_DISABLE));
    rec.explainNext([
      'vfio_device_fops_release: vfio_pci_release disables the device; the group loses a container user',
    ]);
    need(p.close(dev));
    rec.explainNext([
      'vfio_group_fops_release: the last container user detaches the group from the container',
    ]);
    need(p.close(grp));
    rec.explainNext(['vfio_fops_release: the last container reference; vfio_container_release frees it']);
    need(p.close(container));
    res.completed = true;
  }
}
