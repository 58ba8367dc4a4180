/* vfio-pci: the public header of src/vfio/pci. */
export { type VfioPciProfile, vfioPciProfile } from './profile.ts';
export { VfioPciDevice, vfioPciModule, vfioPciOps } from './vfio_pci.ts';
export { vfioPciStatics } from './vfio_pci_private.ts';
