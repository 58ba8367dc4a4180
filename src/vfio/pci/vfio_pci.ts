import { IommuGroup, iommuGroupGet, iommuGroupPut } from '../../iommu/index.ts';
import {
  currentKernel,
  fail,
  type KthreadBody,
  type Module,
  type ModuleSpec,
  Mutex,
  modulePut,
  traced,
  tryModuleGet,
} from '../../kernel/index.ts';
import {
  definePciDriver,
  PCI_HEADER_TYPE_NORMAL,
  type PciDev,
  type PciDriver,
  pciRegisterDriver,
  pciUnregisterDriver,
} from '../../pci/index.ts';
import { EINVAL, ENODEV, ENOTTY } from '../../uapi/index.ts';
import { type VfioDeviceOps, vfioAddGroupDev, vfioDelGroupDev } from '../index.ts';

/*
 * vfio-pci: the VFIO bus driver for PCI devices (drivers/vfio/pci/vfio_pci.c).
 * Its probe registers the device with the VFIO core; its open/release
 * enable the device on the first user and disable it after the last.
 */
export class VfioPciDevice {
  refcnt = 0;
  constructor(readonly pdev: PciDev) {}
}

/* the module's statics (THIS_MODULE, driver_lock), one set per kernel */
interface VfioPciStatics {
  readonly module: Module;
  readonly driverLock: Mutex;
  driver: PciDriver | undefined;
}
const statics = new WeakMap<object, VfioPciStatics>();

function vfioPci(): VfioPciStatics {
  const s = statics.get(currentKernel());
  if (s === undefined) throw new Error('vfio_pci is not loaded');
  return s;
}

function vfioPciEnable(_vdev: VfioPciDevice): number {
  return 0;
}

function vfioPciDisable(_vdev: VfioPciDevice): void {}

const vfioPciOpen = traced('vfio_pci_open', (deviceData: unknown): number => {
  const vdev = deviceData as VfioPciDevice;
  const { module: thisModule, driverLock } = vfioPci();
  let ret = 0;
  if (!tryModuleGet(thisModule)) return -ENODEV;
  driverLock.lock();
  if (vdev.refcnt === 0) {
    ret = vfioPciEnable(vdev);
    if (ret !== 0) {
      driverLock.unlock();
      modulePut(thisModule);
      return ret;
    }
  }
  vdev.refcnt++;
  driverLock.unlock();
  return ret;
});

const vfioPciRelease = traced('vfio_pci_release', (deviceData: unknown): void => {
  const vdev = deviceData as VfioPciDevice;
  const { module: thisModule, driverLock } = vfioPci();
  driverLock.lock();
  if (--vdev.refcnt === 0) vfioPciDisable(vdev);
  driverLock.unlock();
  modulePut(thisModule);
});

export const vfioPciOps: VfioDeviceOps = {
  name: 'vfio-pci',
  open: vfioPciOpen,
  release: vfioPciRelease,
  ioctl: (_d, cmd) => fail(ENOTTY, `vfio-pci: ioctl 0x${cmd.toString(16)} not handled`),
};

const vfioPciProbe = traced(
  'vfio_pci_probe',
  (pdev: PciDev): number => {
    if (pdev.hdr_type !== PCI_HEADER_TYPE_NORMAL)
      return fail(EINVAL, `vfio-pci: ${pdev.name} is not a normal (type 0) function`);
    const group = iommuGroupGet(pdev);
    if (group === undefined) return fail(EINVAL, `vfio-pci: ${pdev.name} has no IOMMU group`);
    const vdev = new VfioPciDevice(pdev);
    currentKernel().objects.alloc('vfio_pci_device');
    const ret = vfioAddGroupDev(pdev, vfioPciOps, vdev);
    if (ret !== 0) {
      iommuGroupPut(group);
      currentKernel().objects.free('vfio_pci_device');
    }
    return ret;
  },
  (pdev) => pdev.name,
);

function* vfioPciRemove(pdev: PciDev): KthreadBody<void> {
  yield* vfioDelGroupDev(pdev);
  /* the reference vfio_pci_probe took */
  if (pdev.iommu_group instanceof IommuGroup) iommuGroupPut(pdev.iommu_group);
  currentKernel().objects.free('vfio_pci_device');
}

export const vfioPciModule: ModuleSpec = {
  name: 'vfio_pci',
  depends: ['vfio'],
  init(mod) {
    const st: VfioPciStatics = {
      module: mod,
      driverLock: new Mutex('vfio_pci driver_lock'),
      driver: undefined,
    };
    statics.set(currentKernel(), st);
    const driver = definePciDriver({
      name: 'vfio-pci',
      owner: mod,
      driver_managed_dma: true,
      probe: vfioPciProbe,
      remove: vfioPciRemove,
    });
    st.driver = driver;
    return pciRegisterDriver(driver);
  },
  exit() {
    const st = vfioPci();
    if (st.driver !== undefined) pciUnregisterDriver(st.driver);
    statics.delete(currentKernel());
  },
};
