// End-of-life dates of Node release lines (https://github.com/nodejs/Release#release-schedule):
// an end-of-life major still builds (an old app must deploy today and upgrade later, as on
// Heroku), but its build says loudly that it gets no security fixes.
const END_OF_LIFE: Readonly<Record<number, string>> = {
  16: '2023-09-11',
  17: '2022-06-01',
  18: '2025-04-30',
  19: '2023-06-01',
  20: '2026-04-30',
  21: '2024-06-01',
  22: '2027-04-30',
  23: '2025-06-01',
  24: '2028-04-30',
  25: '2026-06-01',
  26: '2029-04-30',
};

/** The date a major reached end-of-life if it has by `now`, else null. */
export function nodeEndOfLife(major: number, now: Date = new Date()): string | null {
  const date = END_OF_LIFE[major] ?? (major < 16 ? 'long ago' : null);
  if (date === null) return null;
  if (date === 'long ago') return date;
  return Date.parse(`${date}T00:00:00Z`) <= now.getTime() ? date : null;
}
