import {
  VFIO_DMA_CC_IOMMU,
  VFIO_EEH,
  VFIO_NOIOMMU_IOMMU,
  VFIO_SPAPR_TCE_IOMMU,
  VFIO_SPAPR_TCE_v2_IOMMU,
  VFIO_TYPE1_IOMMU,
  VFIO_TYPE1_NESTING_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  VFIO_UNMAP_ALL,
  VFIO_UPDATE_VADDR,
  type VfioFdKind,
  vfioIoctlName,
} from '../uapi/index.ts';

/* Symbolic names for the numbers that appear in traces and step logs. */

const EXTENSIONS: ReadonlyMap<number, string> = new Map([
  [VFIO_TYPE1_IOMMU, 'VFIO_TYPE1_IOMMU'],
  [VFIO_SPAPR_TCE_IOMMU, 'VFIO_SPAPR_TCE_IOMMU'],
  [VFIO_TYPE1v2_IOMMU, 'VFIO_TYPE1v2_IOMMU'],
  [VFIO_DMA_CC_IOMMU, 'VFIO_DMA_CC_IOMMU'],
  [VFIO_EEH, 'VFIO_EEH'],
  [VFIO_TYPE1_NESTING_IOMMU, 'VFIO_TYPE1_NESTING_IOMMU'],
  [VFIO_SPAPR_TCE_v2_IOMMU, 'VFIO_SPAPR_TCE_v2_IOMMU'],
  [VFIO_NOIOMMU_IOMMU, 'VFIO_NOIOMMU_IOMMU'],
  [VFIO_UNMAP_ALL, 'VFIO_UNMAP_ALL'],
  [VFIO_UPDATE_VADDR, 'VFIO_UPDATE_VADDR'],
]);

/** VFIO_CHECK_EXTENSION / VFIO_SET_IOMMU argument by name */
export function vfioExtensionName(arg: number | bigint): string {
  return EXTENSIONS.get(Number(arg)) ?? String(arg);
}

/** the kind of fd an ioctl handler serves, guessed from the kernel function's name */
function fdKindOf(fn: string): VfioFdKind {
  if (fn.includes('group')) return 'group';
  if (fn.includes('device') || fn.includes('pci')) return 'device';
  return 'container';
}

/**
 * An ioctl's name on a kind of fd. type1 and sPAPR share container ioctl
 * numbers: the handler's name, else the machine's arch, picks one.
 */
export function ioctlName(nr: number, kind: VfioFdKind, hint: { fn?: string; arch?: string } = {}): string {
  const names = vfioIoctlName(nr, kind).split('/');
  if (names.length === 1) return names[0] ?? String(nr);
  const fn = hint.fn ?? '';
  const spapr = fn.startsWith('tce_') || (!fn.includes('type1') && hint.arch === 'ppc64');
  const pick = names.find((n) => (n.includes('SPAPR') || n === 'VFIO_EEH_PE_OP') === spapr);
  return pick ?? names.join('/');
}

/**
 * Make a traced call's arguments readable: ioctl numbers become their
 * VFIO_* names and IOMMU type magics become VFIO_*_IOMMU.
 */
export function decodeTraceArgs(fn: string, args: string, arch?: string): string {
  if (args === '') return args;
  let out = args.replace(/\bcmd=(0x[0-9a-f]+|\d+)/g, (_m, n: string) => {
    const name = ioctlName(Number(n), fdKindOf(fn), arch === undefined ? { fn } : { fn, arch });
    return `cmd=${name}`;
  });
  if (/set_iommu|check_extension/.test(fn))
    out = out.replace(/\barg=(\d+)/g, (_m, n: string) => `arg=${vfioExtensionName(Number(n))}`);
  return out;
}
