/* The PCI core: the public header of src/pci. */
export * from './access.ts';
export * from './bus.ts';
export * from './caps.ts';
export * from './config.ts';
export * from './irq.ts';
export type * from './model.ts';
export * from './msi.ts';
export * from './pci.ts';
export * from './regs.ts';
export * from './reset.ts';
