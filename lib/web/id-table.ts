// A small number per job id, for every job of the deployment (the tally's (state, class) per job:
// job-tally.ts). Job ids are the numbers of one counter (nextId), dense, so the numbers are held
// in pages of PAGE_IDS ids, two bytes an id: 100,000 jobs cost ~200 KB, where a Map of id strings
// cost ~6 MB of the supervisor's heap and, as it grew, promoted garbage enough to double the main
// thread's young generation. An id that is not such a number (none is) goes to a plain Map.

const PAGE_IDS = 4096;
/** The largest value held (0 stands for none). */
export const MAX_VALUE = 0xffff;

export class IdTable {
  private readonly pages = new Map<number, Uint16Array>();
  private readonly others = new Map<string, number>();

  /** The value of `id`; 0: none. */
  get(id: string): number {
    const n = numericId(id);
    if (n === null) return this.others.get(id) ?? 0;
    return this.pages.get(Math.floor(n / PAGE_IDS))?.[n % PAGE_IDS] ?? 0;
  }

  /** Sets `id` to `value` (0: none; a page stays until clear()). */
  set(id: string, value: number): void {
    const n = numericId(id);
    if (n === null) {
      if (value === 0) this.others.delete(id);
      else this.others.set(id, value);
      return;
    }
    const at = Math.floor(n / PAGE_IDS);
    let page = this.pages.get(at);
    if (!page) {
      if (value === 0) return;
      page = new Uint16Array(PAGE_IDS);
      this.pages.set(at, page);
    }
    page[n % PAGE_IDS] = value;
  }

  clear(): void {
    this.pages.clear();
    this.others.clear();
  }
}

function numericId(id: string): number | null {
  if (!/^\d{1,15}$/.test(id)) return null;
  return Number(id);
}
