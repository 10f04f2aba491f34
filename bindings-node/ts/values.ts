/** Values as the engine stores them (JSON's rules). */

/** Whether storing `v` needs JSON's rules: a `toJSON` (Date), or objects that are not plain. */
function needsJson(v: unknown, depth: number): boolean {
  if (v === null || typeof v !== 'object' || depth > 64) return false;
  if (typeof (v as { toJSON?: unknown }).toJSON === 'function') return true;
  if (Array.isArray(v)) {
    for (const x of v) if (needsJson(x, depth + 1)) return true;
    return false;
  }
  const proto: unknown = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) return true;
  for (const k in v) if (needsJson((v as Record<string, unknown>)[k], depth + 1)) return true;
  return false;
}

/** A value as the engine stores it: JSON's rules for what is not plain data (a Date becomes its
 * ISO string, as with JSON.stringify), plain data as it is (no copy). */
export function storable(v: unknown): unknown {
  if (v === undefined) return null;
  return needsJson(v, 0) ? (JSON.parse(JSON.stringify(v)) as unknown) : v;
}

