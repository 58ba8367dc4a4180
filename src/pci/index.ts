/* The PCI core: the public header of src/pci. */
export * from './bus.ts';
export * from './config.ts';
export type * from './model.ts';
export * from './pci.ts';
export * from './regs.ts';
