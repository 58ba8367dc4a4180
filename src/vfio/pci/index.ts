/* vfio-pci: the public header of src/vfio/pci. */
export { VfioPciDevice, vfioPciModule, vfioPciOps } from './vfio_pci.ts';
