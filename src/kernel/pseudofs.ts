import { EFAULT, EINVAL, EIO, EISDIR } from '../uapi/index.ts';
import { current } from './current.ts';
import type { File, FileOperations, FilePos } from './fs.ts';
import type { AttrNode } from './vfs.ts';

/*
 * File operations for sysfs/procfs text attributes: a read returns the
 * attribute's show() text from the file position; a write hands the text to
 * store(), which returns bytes consumed or -errno (what the writer sees).
 */
export const attrFops: FileOperations = {
  name: 'kernfs_file_fops',
  read(file: File, buf: number, count: number, ppos: FilePos): number {
    const attr = file.private_data as AttrNode;
    if (attr.show === undefined) return -EIO;
    const text = new TextEncoder().encode(attr.show());
    const pos = Number(ppos.pos);
    if (pos >= text.length) return 0;
    const n = Math.min(count, text.length - pos);
    const mm = current().mm;
    if (mm === null || mm.copyTo(buf, text, pos, n) !== 0) return -EFAULT;
    ppos.pos += BigInt(n);
    return n;
  },
  write(file: File, buf: number, count: number): number {
    const attr = file.private_data as AttrNode;
    if (attr.store === undefined) return -EIO;
    const bytes = new Uint8Array(count);
    const mm = current().mm;
    if (mm === null || mm.copyFrom(buf, bytes, 0, count) !== 0) return -EFAULT;
    return attr.store(new TextDecoder().decode(bytes));
  },
};

export const dirFops: FileOperations = {
  name: 'dir_fops',
  read(): number {
    return -EISDIR;
  },
  write(): number {
    return -EINVAL;
  },
};
