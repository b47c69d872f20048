import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { resolveUser } from './users.ts';

const root = mkdtempSync(join(tmpdir(), 'paas-users-'));
const top = join(root, 'top');
const base = join(root, 'base');
const hostSecret = join(root, 'host-passwd');
mkdirSync(join(top, 'etc'), { recursive: true });
mkdirSync(join(base, 'etc'), { recursive: true });
writeFileSync(
  join(base, 'etc/passwd'),
  'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n',
);
writeFileSync(join(base, 'etc/group'), 'root:x:0:\nwheel:x:10:app\napp:x:1000:\nstaff:x:50:\n');
writeFileSync(hostSecret, 'evil:x:4242:4242::/:/bin/sh\n');
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('resolveUser', () => {
  it('resolves names, numbers and groups from the topmost layer that has the file', async () => {
    expect(await resolveUser([top, base], 'app')).toEqual({
      uid: 1000,
      gid: 1000,
      groups: [10],
      home: '/home/app',
    });
    expect(await resolveUser([top, base], '0')).toMatchObject({ uid: 0, gid: 0 });
    expect(await resolveUser([top, base], 'app:staff')).toMatchObject({ uid: 1000, gid: 50 });
    expect(await resolveUser([top, base], '1234')).toMatchObject({ uid: 1234, gid: 0, groups: [] });
    expect(await resolveUser([top, base], '1234:99')).toMatchObject({ uid: 1234, gid: 99 });
  });

  it('treats a whiteout in a higher layer as the file deleted, not as a reason to look lower', async () => {
    const wiped = join(root, 'wiped');
    mkdirSync(join(wiped, 'etc'), { recursive: true });
    execFileSync('mknod', [join(wiped, 'etc/passwd'), 'c', '0', '0']);
    await expect(resolveUser([wiped, base], 'app')).rejects.toThrow(
      /user: "app" is not in the image/,
    );
    expect(await resolveUser([top, base], 'app')).toMatchObject({ uid: 1000 });
  });

  it('refuses unknown users and groups, naming the field', async () => {
    await expect(resolveUser([top, base], 'nobody-here')).rejects.toThrow(
      /user: "nobody-here" is not in the image/,
    );
    await expect(resolveUser([top, base], 'app:nogroup')).rejects.toThrow(/group "nogroup"/);
  });

  it('never follows an image symlink out of the root', async () => {
    const evil = join(root, 'evil');
    mkdirSync(join(evil, 'etc'), { recursive: true });
    symlinkSync(hostSecret, join(evil, 'etc/passwd'));
    await expect(resolveUser([evil], 'evil')).rejects.toThrow(/not in the image/);
    symlinkSync('../../../../../../../../..' + hostSecret, join(evil, 'etc/group'));
    await expect(resolveUser([evil], '0:evil')).rejects.toThrow(/group "evil"/);
    // A link in a lower layer's /etc to the host: the upper layer's real /etc hides it.
    const lower = join(root, 'lower');
    mkdirSync(lower);
    symlinkSync(root, join(lower, 'etc'));
    writeFileSync(join(root, 'passwd'), 'evil:x:4242:4242::/:/bin/sh\n');
    await expect(resolveUser([lower], 'evil')).rejects.toThrow(/not in the image/);
    await expect(resolveUser([top, lower], 'evil')).rejects.toThrow(/not in the image/);
  });
});
