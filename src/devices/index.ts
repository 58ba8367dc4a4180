/* Emulated devices and the host drivers that own them when VFIO does not. */
export * from './generic.ts';
export * from './host_driver.ts';
