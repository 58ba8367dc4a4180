// ioctl request encoding (include/uapi/asm-generic/ioctl.h) and the VFIO
// ioctl numbers of include/uapi/linux/vfio.h.
//
// Generic layout: nr bits 0-7, type bits 8-15, size bits 16-29, dir bits 30-31.
// Every VFIO ioctl is _IO(';', 100 + n): no size and no direction bits, the
// structures carry their own argsz. Numbers 12..21 are reused between fd kinds.

export const _IOC_NRBITS = 8;
export const _IOC_TYPEBITS = 8;
export const _IOC_SIZEBITS = 14;
export const _IOC_DIRBITS = 2;
export const _IOC_NRSHIFT = 0;
export const _IOC_TYPESHIFT = _IOC_NRSHIFT + _IOC_NRBITS;
export const _IOC_SIZESHIFT = _IOC_TYPESHIFT + _IOC_TYPEBITS;
export const _IOC_DIRSHIFT = _IOC_SIZESHIFT + _IOC_SIZEBITS;
export const _IOC_NONE = 0;
export const _IOC_WRITE = 1;
export const _IOC_READ = 2;

function field(what: string, v: number, bits: number): number {
  if (!Number.isInteger(v) || v < 0 || v >= 2 ** bits)
    throw new RangeError(`_IOC: ${what} ${v} out of range`);
  return v;
}

/** _IOC(dir, type, nr, size) as an unsigned 32-bit number. */
export function _IOC(dir: number, type: number, nr: number, size: number): number {
  return (
    ((field('dir', dir, _IOC_DIRBITS) << _IOC_DIRSHIFT) |
      (field('type', type, _IOC_TYPEBITS) << _IOC_TYPESHIFT) |
      (field('nr', nr, _IOC_NRBITS) << _IOC_NRSHIFT) |
      (field('size', size, _IOC_SIZEBITS) << _IOC_SIZESHIFT)) >>>
    0
  );
}
export const _IO = (type: number, nr: number): number => _IOC(_IOC_NONE, type, nr, 0);
export const _IOR = (type: number, nr: number, size: number): number => _IOC(_IOC_READ, type, nr, size);
export const _IOW = (type: number, nr: number, size: number): number => _IOC(_IOC_WRITE, type, nr, size);
export const _IOWR = (type: number, nr: number, size: number): number =>
  _IOC(_IOC_READ | _IOC_WRITE, type, nr, size);

export const _IOC_DIR = (req: number): number => (req >>> _IOC_DIRSHIFT) & 0x3;
export const _IOC_TYPE = (req: number): number => (req >>> _IOC_TYPESHIFT) & 0xff;
export const _IOC_NR = (req: number): number => (req >>> _IOC_NRSHIFT) & 0xff;
export const _IOC_SIZE = (req: number): number => (req >>> _IOC_SIZESHIFT) & 0x3fff;

/** asm-generic/ioctls.h */
export const FIONREAD = 0x541b;
export const FIONBIO = 0x5421;
export const FIOCLEX = 0x5451;
export const FIONCLEX = 0x5450;
export const FIOASYNC = 0x5452;
export const FIOQSIZE = 0x5460;
/** include/uapi/linux/fs.h: ioctls the VFS answers for every file (do_vfs_ioctl) */
export const FIGETBSZ = 0x2;
export const FIFREEZE = 0xc0045877;
export const FITHAW = 0xc0045878;
export const FS_IOC_FIEMAP = 0xc020660b;

export const VFIO_TYPE = 0x3b; // ';'
export const VFIO_BASE = 100;

// container fd (/dev/vfio/vfio)
export const VFIO_GET_API_VERSION = _IO(VFIO_TYPE, VFIO_BASE + 0);
export const VFIO_CHECK_EXTENSION = _IO(VFIO_TYPE, VFIO_BASE + 1);
export const VFIO_SET_IOMMU = _IO(VFIO_TYPE, VFIO_BASE + 2);
// group fd (/dev/vfio/$GROUP)
export const VFIO_GROUP_GET_STATUS = _IO(VFIO_TYPE, VFIO_BASE + 3);
export const VFIO_GROUP_SET_CONTAINER = _IO(VFIO_TYPE, VFIO_BASE + 4);
export const VFIO_GROUP_UNSET_CONTAINER = _IO(VFIO_TYPE, VFIO_BASE + 5);
export const VFIO_GROUP_GET_DEVICE_FD = _IO(VFIO_TYPE, VFIO_BASE + 6);
// device fd
export const VFIO_DEVICE_GET_INFO = _IO(VFIO_TYPE, VFIO_BASE + 7);
export const VFIO_DEVICE_GET_REGION_INFO = _IO(VFIO_TYPE, VFIO_BASE + 8);
export const VFIO_DEVICE_GET_IRQ_INFO = _IO(VFIO_TYPE, VFIO_BASE + 9);
export const VFIO_DEVICE_SET_IRQS = _IO(VFIO_TYPE, VFIO_BASE + 10);
export const VFIO_DEVICE_RESET = _IO(VFIO_TYPE, VFIO_BASE + 11);
export const VFIO_DEVICE_GET_PCI_HOT_RESET_INFO = _IO(VFIO_TYPE, VFIO_BASE + 12);
export const VFIO_DEVICE_PCI_HOT_RESET = _IO(VFIO_TYPE, VFIO_BASE + 13);
export const VFIO_DEVICE_QUERY_GFX_PLANE = _IO(VFIO_TYPE, VFIO_BASE + 14);
export const VFIO_DEVICE_GET_GFX_DMABUF = _IO(VFIO_TYPE, VFIO_BASE + 15);
export const VFIO_DEVICE_IOEVENTFD = _IO(VFIO_TYPE, VFIO_BASE + 16);
export const VFIO_DEVICE_FEATURE = _IO(VFIO_TYPE, VFIO_BASE + 17);
export const VFIO_DEVICE_BIND_IOMMUFD = _IO(VFIO_TYPE, VFIO_BASE + 18);
export const VFIO_DEVICE_ATTACH_IOMMUFD_PT = _IO(VFIO_TYPE, VFIO_BASE + 19);
export const VFIO_DEVICE_DETACH_IOMMUFD_PT = _IO(VFIO_TYPE, VFIO_BASE + 20);
// container fd, IOMMU backend (type1 / sPAPR TCE)
export const VFIO_IOMMU_GET_INFO = _IO(VFIO_TYPE, VFIO_BASE + 12);
export const VFIO_IOMMU_MAP_DMA = _IO(VFIO_TYPE, VFIO_BASE + 13);
export const VFIO_IOMMU_UNMAP_DMA = _IO(VFIO_TYPE, VFIO_BASE + 14);
export const VFIO_IOMMU_ENABLE = _IO(VFIO_TYPE, VFIO_BASE + 15);
export const VFIO_IOMMU_DISABLE = _IO(VFIO_TYPE, VFIO_BASE + 16);
export const VFIO_IOMMU_DIRTY_PAGES = _IO(VFIO_TYPE, VFIO_BASE + 17);
export const VFIO_IOMMU_SPAPR_TCE_GET_INFO = _IO(VFIO_TYPE, VFIO_BASE + 12);
export const VFIO_IOMMU_SPAPR_REGISTER_MEMORY = _IO(VFIO_TYPE, VFIO_BASE + 17);
export const VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY = _IO(VFIO_TYPE, VFIO_BASE + 18);
export const VFIO_IOMMU_SPAPR_TCE_CREATE = _IO(VFIO_TYPE, VFIO_BASE + 19);
export const VFIO_IOMMU_SPAPR_TCE_REMOVE = _IO(VFIO_TYPE, VFIO_BASE + 20);
export const VFIO_EEH_PE_OP = _IO(VFIO_TYPE, VFIO_BASE + 21);
// migration data fd (returned by VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE)
export const VFIO_MIG_GET_PRECOPY_INFO = _IO(VFIO_TYPE, VFIO_BASE + 21);

/** Which kind of fd an ioctl number is interpreted by. */
export type VfioFdKind = 'container' | 'group' | 'device' | 'migration';

const IOCTL_NAMES: readonly (readonly [number, VfioFdKind, string])[] = [
  [VFIO_GET_API_VERSION, 'container', 'VFIO_GET_API_VERSION'],
  [VFIO_CHECK_EXTENSION, 'container', 'VFIO_CHECK_EXTENSION'],
  [VFIO_SET_IOMMU, 'container', 'VFIO_SET_IOMMU'],
  [VFIO_GROUP_GET_STATUS, 'group', 'VFIO_GROUP_GET_STATUS'],
  [VFIO_GROUP_SET_CONTAINER, 'group', 'VFIO_GROUP_SET_CONTAINER'],
  [VFIO_GROUP_UNSET_CONTAINER, 'group', 'VFIO_GROUP_UNSET_CONTAINER'],
  [VFIO_GROUP_GET_DEVICE_FD, 'group', 'VFIO_GROUP_GET_DEVICE_FD'],
  [VFIO_DEVICE_GET_INFO, 'device', 'VFIO_DEVICE_GET_INFO'],
  [VFIO_DEVICE_GET_REGION_INFO, 'device', 'VFIO_DEVICE_GET_REGION_INFO'],
  [VFIO_DEVICE_GET_IRQ_INFO, 'device', 'VFIO_DEVICE_GET_IRQ_INFO'],
  [VFIO_DEVICE_SET_IRQS, 'device', 'VFIO_DEVICE_SET_IRQS'],
  [VFIO_DEVICE_RESET, 'device', 'VFIO_DEVICE_RESET'],
  [VFIO_IOMMU_GET_INFO, 'container', 'VFIO_IOMMU_GET_INFO'],
  [VFIO_IOMMU_SPAPR_TCE_GET_INFO, 'container', 'VFIO_IOMMU_SPAPR_TCE_GET_INFO'],
  [VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, 'device', 'VFIO_DEVICE_GET_PCI_HOT_RESET_INFO'],
  [VFIO_IOMMU_MAP_DMA, 'container', 'VFIO_IOMMU_MAP_DMA'],
  [VFIO_DEVICE_PCI_HOT_RESET, 'device', 'VFIO_DEVICE_PCI_HOT_RESET'],
  [VFIO_IOMMU_UNMAP_DMA, 'container', 'VFIO_IOMMU_UNMAP_DMA'],
  [VFIO_DEVICE_QUERY_GFX_PLANE, 'device', 'VFIO_DEVICE_QUERY_GFX_PLANE'],
  [VFIO_IOMMU_ENABLE, 'container', 'VFIO_IOMMU_ENABLE'],
  [VFIO_DEVICE_GET_GFX_DMABUF, 'device', 'VFIO_DEVICE_GET_GFX_DMABUF'],
  [VFIO_IOMMU_DISABLE, 'container', 'VFIO_IOMMU_DISABLE'],
  [VFIO_DEVICE_IOEVENTFD, 'device', 'VFIO_DEVICE_IOEVENTFD'],
  [VFIO_IOMMU_DIRTY_PAGES, 'container', 'VFIO_IOMMU_DIRTY_PAGES'],
  [VFIO_IOMMU_SPAPR_REGISTER_MEMORY, 'container', 'VFIO_IOMMU_SPAPR_REGISTER_MEMORY'],
  [VFIO_DEVICE_FEATURE, 'device', 'VFIO_DEVICE_FEATURE'],
  [VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY, 'container', 'VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY'],
  [VFIO_DEVICE_BIND_IOMMUFD, 'device', 'VFIO_DEVICE_BIND_IOMMUFD'],
  [VFIO_IOMMU_SPAPR_TCE_CREATE, 'container', 'VFIO_IOMMU_SPAPR_TCE_CREATE'],
  [VFIO_DEVICE_ATTACH_IOMMUFD_PT, 'device', 'VFIO_DEVICE_ATTACH_IOMMUFD_PT'],
  [VFIO_IOMMU_SPAPR_TCE_REMOVE, 'container', 'VFIO_IOMMU_SPAPR_TCE_REMOVE'],
  [VFIO_DEVICE_DETACH_IOMMUFD_PT, 'device', 'VFIO_DEVICE_DETACH_IOMMUFD_PT'],
  [VFIO_EEH_PE_OP, 'container', 'VFIO_EEH_PE_OP'],
  [VFIO_MIG_GET_PRECOPY_INFO, 'migration', 'VFIO_MIG_GET_PRECOPY_INFO'],
];

/**
 * Name of an ioctl request for tracing. With fdKind, only the names valid on
 * that kind of fd (several for a container: type1 and sPAPR share numbers);
 * without it, every candidate. Several names are joined with '/'. FIONREAD is
 * named on any fd; an unknown request gives its hex value ('0x3b7a').
 */
export function vfioIoctlName(nr: number, fdKind?: VfioFdKind): string {
  if (nr === FIONREAD) return 'FIONREAD';
  const names = IOCTL_NAMES.filter(([n, kind]) => n === nr && (fdKind === undefined || kind === fdKind)).map(
    ([, , name]) => name,
  );
  return names.length > 0 ? names.join('/') : `0x${(nr >>> 0).toString(16)}`;
}
