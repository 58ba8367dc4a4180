import { currentKernel, type PhysObject } from '../../kernel/index.ts';

/*
 * struct page operations on physical addresses (pfn_to_page + put_page,
 * SetPageDirty, alloc_pages/free_pages for the kernel's own DMA buffers).
 * A TCE holds a real address, not an mm: the page reference a TCE owns
 * is dropped wherever the table is cleared, whichever process runs.
 */
function pageOf(phys: number): { o: PhysObject; page: number } | undefined {
  const o = currentKernel().phys.lookup(phys);
  if (o === undefined) return undefined;
  return { o, page: Math.floor((phys - o.phys) / o.pageSize) };
}

/** SetPageDirty(pfn_to_page(phys >> PAGE_SHIFT)) */
export function setPageDirty(phys: number): void {
  const p = pageOf(phys);
  if (p === undefined) return;
  if (p.o.dirty === undefined) p.o.dirty = new Uint8Array(p.o.npages);
  p.o.dirty[p.page] = 1;
}

/**
 * put_page(pfn_to_page(phys >> PAGE_SHIFT)), after SetPageDirty when
 * `dirty`. A page nobody holds is the kernel's "Bad page state", logged,
 * never a JavaScript exception.
 */
export function putPage(phys: number, dirty: boolean): void {
  const k = currentKernel();
  const p = pageOf(phys);
  if (p === undefined || p.o.pinCount(p.page) === 0) {
    k.printk('alert', `BUG: Bad page state: put_page on pfn 0x${Math.floor(phys / k.pageSize).toString(16)}`);
    return;
  }
  p.o.unpin(p.page, dirty);
  k.phys.maybeFree(p.o);
}

/** alloc_pages for the kernel's own use: lives until freeKernelPages */
export function allocKernelPages(size: number): PhysObject {
  const k = currentKernel();
  const o = k.phys.alloc(size, k.pageSize);
  o.mapcount++; /* the kernel's linear mapping keeps it */
  k.objects.alloc('kernel_dma_pages');
  return o;
}

export function freeKernelPages(o: PhysObject): void {
  const k = currentKernel();
  o.mapcount--;
  k.phys.maybeFree(o);
  k.objects.free('kernel_dma_pages');
}
