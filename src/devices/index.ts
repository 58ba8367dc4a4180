/* Emulated devices and the host drivers that own them when VFIO does not. */
export * from './copy_engine.ts';
export * from './edu.ts';
export * from './generic.ts';
export * from './host_driver.ts';
export * from './msix.ts';
export * from './pcie_root_port.ts';
export * from './serial.ts';
