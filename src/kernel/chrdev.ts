import { EBUSY, EEXIST, MAJOR, MINOR, MISC_MAJOR, MKDEV } from '../uapi/index.ts';
import type { FileOperations } from './fs.ts';
import type { Vfs } from './vfs.ts';

/*
 * Character devices: major/minor regions (alloc_chrdev_region), cdevs
 * (cdev_add), misc devices (misc_register, major 10), device classes and
 * the device nodes devtmpfs creates for them.
 */
export interface Cdev {
  readonly ops: FileOperations;
  dev: number;
  count: number;
}

interface Region {
  major: number;
  baseminor: number;
  count: number;
  name: string;
}

export interface MiscDevice {
  readonly minor: number;
  readonly name: string;
  readonly fops: FileOperations;
  readonly nodename?: string;
  readonly mode?: number;
}

export interface DeviceClass {
  readonly name: string;
  devnode?: (name: string) => { path: string; mode?: number };
}

export interface ClassDevice {
  readonly cls: DeviceClass;
  readonly devt: number;
  readonly name: string;
  readonly drvdata: unknown;
  readonly nodePath: string;
}

/* dynamic majors are handed out from 254 downwards, as find_dynamic_major */
const DYN_MAJOR_TOP = 254;
const DYN_MAJOR_BOTTOM = 234;

export class CharDevices {
  private regions: Region[] = [];
  private cdevs: Cdev[] = [];
  private misc: MiscDevice[] = [];
  private miscCdev: Cdev | undefined;
  readonly classes = new Map<string, DeviceClass>();
  private readonly classDevices = new Map<number, ClassDevice>();

  constructor(private readonly vfs: Vfs) {}

  allocChrdevRegion(baseminor: number, count: number, name: string): number {
    for (let major = DYN_MAJOR_TOP; major >= DYN_MAJOR_BOTTOM; major--) {
      if (!this.regions.some((r) => r.major === major)) {
        this.regions.push({ major, baseminor, count, name });
        return MKDEV(major, baseminor);
      }
    }
    return -EBUSY;
  }

  registerChrdevRegion(dev: number, count: number, name: string): number {
    const major = MAJOR(dev);
    const baseminor = MINOR(dev);
    if (
      this.regions.some(
        (r) => r.major === major && r.baseminor < baseminor + count && baseminor < r.baseminor + r.count,
      )
    )
      return -EBUSY;
    this.regions.push({ major, baseminor, count, name });
    return 0;
  }

  unregisterChrdevRegion(dev: number, count: number): void {
    this.regions = this.regions.filter(
      (r) => !(r.major === MAJOR(dev) && r.baseminor === MINOR(dev) && r.count === count),
    );
  }

  cdevAdd(cdev: Cdev, dev: number, count: number): number {
    cdev.dev = dev;
    cdev.count = count;
    this.cdevs.push(cdev);
    return 0;
  }

  cdevDel(cdev: Cdev): void {
    this.cdevs = this.cdevs.filter((c) => c !== cdev);
  }

  /** chrdev_open's kobj_lookup: the cdev covering this devt */
  lookup(major: number, minor: number): FileOperations | undefined {
    if (major === MISC_MAJOR) return this.misc.find((m) => m.minor === minor)?.fops;
    const dev = MKDEV(major, minor);
    return this.cdevs.find((c) => dev >= c.dev && dev < c.dev + c.count)?.ops;
  }

  miscRegister(m: MiscDevice): number {
    if (this.misc.some((x) => x.minor === m.minor)) return -EBUSY;
    if (this.miscCdev === undefined) {
      this.miscCdev = { ops: { name: 'misc_fops' }, dev: MKDEV(MISC_MAJOR, 0), count: 256 };
      this.registerChrdevRegion(MKDEV(MISC_MAJOR, 0), 256, 'misc');
    }
    this.misc.push(m);
    const cls = this.classCreate('misc');
    const r = this.deviceCreate(cls, MKDEV(MISC_MAJOR, m.minor), m, m.name, {
      path: m.nodename ?? m.name,
      mode: m.mode ?? 0o600,
    });
    return typeof r === 'number' ? r : 0;
  }

  miscDeregister(m: MiscDevice): void {
    this.misc = this.misc.filter((x) => x !== m);
    const cls = this.classes.get('misc');
    if (cls !== undefined) this.deviceDestroy(cls, MKDEV(MISC_MAJOR, m.minor));
  }

  classCreate(name: string): DeviceClass {
    const have = this.classes.get(name);
    if (have !== undefined) return have;
    const cls: DeviceClass = { name };
    this.classes.set(name, cls);
    this.vfs.mkdirp(`/sys/class/${name}`);
    return cls;
  }

  classDestroy(cls: DeviceClass): void {
    this.classes.delete(cls.name);
    this.vfs.remove(`/sys/class/${cls.name}`);
  }

  /**
   * device_create: the sysfs entry under /sys/devices/virtual/<class>/<name>,
   * its /sys/class link, and the devtmpfs node (class->devnode decides the
   * path; mode 0600 unless it says otherwise).
   */
  deviceCreate(
    cls: DeviceClass,
    devt: number,
    drvdata: unknown,
    name: string,
    node?: { path: string; mode?: number },
  ): ClassDevice | number {
    if (this.classDevices.has(devt)) return -EEXIST;
    const where = node ?? cls.devnode?.(name) ?? { path: name };
    const nodePath = `/dev/${where.path}`;
    const sys = `/sys/devices/virtual/${cls.name}/${name}`;
    this.vfs.mkdirp(sys);
    this.vfs.add(`${sys}/dev`, { kind: 'attr', mode: 0o444, show: () => `${MAJOR(devt)}:${MINOR(devt)}\n` });
    this.vfs.link(`/sys/class/${cls.name}/${name}`, sys);
    const r = this.vfs.add(nodePath, {
      kind: 'chr',
      major: MAJOR(devt),
      minor: MINOR(devt),
      mode: where.mode ?? 0o600,
      uid: 0,
      gid: 0,
    });
    if (r < 0) return r;
    const d: ClassDevice = { cls, devt, name, drvdata, nodePath };
    this.classDevices.set(devt, d);
    return d;
  }

  deviceDestroy(cls: DeviceClass, devt: number): void {
    const d = this.classDevices.get(devt);
    if (d === undefined || d.cls !== cls) return;
    this.classDevices.delete(devt);
    this.vfs.remove(d.nodePath);
    this.vfs.remove(`/sys/class/${cls.name}/${d.name}`);
    this.vfs.remove(`/sys/devices/virtual/${cls.name}/${d.name}`);
  }

  exists(major: number, minor: number): boolean {
    return this.lookup(major, minor) !== undefined;
  }
}
