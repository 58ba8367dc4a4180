import {
  Host,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  O_RDWR,
  PROT_READ,
  PROT_WRITE,
  VFIO_API_VERSION,
  VFIO_CHECK_EXTENSION,
  VFIO_GET_API_VERSION,
  VFIO_GROUP_FLAGS_VIABLE,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_GET_STATUS,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_SET_IOMMU,
  VFIO_TYPE1_IOMMU,
  errnoName,
  vfio_group_status,
} from '../index.ts';

/*
 * vfio-ts demo: boot a host, hand a device to vfio-pci, and walk the
 * seeds' flow through the raw syscalls, printing each step.
 */
function show(step: string, ret: number | bigint): void {
  const n = Number(ret);
  const txt = n < 0 && n > -4096 ? `-${errnoName(-n)}` : typeof ret === 'bigint' ? `0x${ret.toString(16)}` : String(ret);
  console.log(`  ${step.padEnd(58)} = ${txt}`);
}

function demo(): number {
  const host = new Host({ arch: 'x86_64', kernel: '4.1' });
  host.addPciDevice({ bdf: '0000:00:03.0', model: 'generic', iommuGroup: 3, driver: 'e1000e' });
  console.log('host: x86_64, kernel profile 4.1; 0000:00:03.0 in IOMMU group 3, bound to e1000e');
  show("bind 0000:00:03.0 to vfio-pci (driver_override + drivers_probe)", host.bind('0000:00:03.0', 'vfio-pci'));
  const p = host.spawn({ rlimitMemlock: 64n << 20n });
  const scratch = p.mmap(0n, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0n);
  const container = p.open('/dev/vfio/vfio', O_RDWR);
  show('open("/dev/vfio/vfio")                    vfio_fops_open', container);
  show(`ioctl(VFIO_GET_API_VERSION) (want ${VFIO_API_VERSION})`, p.ioctl(container, VFIO_GET_API_VERSION));
  show('ioctl(VFIO_CHECK_EXTENSION, VFIO_TYPE1_IOMMU)', p.ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1_IOMMU));
  const group = p.open('/dev/vfio/3', O_RDWR);
  show('open("/dev/vfio/3")                       vfio_group_fops_open', group);
  p.mem.write(scratch, vfio_group_status.encode({ argsz: vfio_group_status.size, flags: 0 }));
  show('ioctl(VFIO_GROUP_GET_STATUS)', p.ioctl(group, VFIO_GROUP_GET_STATUS, scratch));
  const st = vfio_group_status.decode(p.mem.read(scratch, 8));
  console.log(`    flags = ${st.flags} (${st.flags & VFIO_GROUP_FLAGS_VIABLE ? 'viable' : 'NOT viable'})`);
  p.mem.write(scratch, new Uint8Array(new Int32Array([container]).buffer));
  show('ioctl(VFIO_GROUP_SET_CONTAINER, &container)', p.ioctl(group, VFIO_GROUP_SET_CONTAINER, scratch));
  show('ioctl(VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU)   vfio_ioctl_set_iommu', p.ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU));
  p.mem.write(scratch, new TextEncoder().encode('0000:00:03.0\0'));
  show('ioctl(VFIO_GROUP_GET_DEVICE_FD, "0000:00:03.0")', p.ioctl(group, VFIO_GROUP_GET_DEVICE_FD, scratch));
  p.exit();
  console.log('\ndmesg:');
  for (const l of host.dmesg()) console.log(`  ${l}`);
  console.log('\nlive kernel objects after exit:', JSON.stringify(host.liveObjects()));
  return 0;
}

const cmd = process.argv[2] ?? 'demo';
if (cmd === 'demo') process.exitCode = demo();
else {
  console.error(`usage: vfio-ts demo`);
  process.exitCode = 2;
}
