import { describe, expect, it } from 'vitest';
import { InvalidImageRef } from '../errors/index.ts';
import { formatImageRef, parseImageRef, parseRepoName } from './ref.ts';

const D = `sha256:${'a'.repeat(64)}`;

describe('parseImageRef', () => {
  it.each([
    ['node:22', null, 'library/node', '22', null],
    ['node', null, 'library/node', 'latest', null],
    ['docker.io/node:24', null, 'library/node', '24', null],
    ['myapp:v3', null, 'library/myapp', 'v3', null],
    ['acme/web:1.0-slim', null, 'acme/web', '1.0-slim', null],
    [`busybox@${D}`, null, 'library/busybox', null, D],
    [`busybox:1@${D}`, null, 'library/busybox', '1', D],
    ['127.0.0.1:5000/app:v1', '127.0.0.1:5000', 'app', 'v1', null],
    ['localhost/team/app', 'localhost', 'team/app', 'latest', null],
    ['registry.example.com/a/b/c:x', 'registry.example.com', 'a/b/c', 'x', null],
  ])('%s', (raw, domain, repository, tag, digest) => {
    const ref = parseImageRef(raw);
    expect(ref).toMatchObject({ domain, repository, tag, digest });
  });

  it.each([
    '',
    'Node:22',
    'node:',
    'node:-x',
    'node:.x',
    'a//b',
    'node@sha256:xyz',
    'no de',
    '../x',
    'x:y:z',
    `a:${'t'.repeat(129)}`,
  ])('refuses %j', (raw) => {
    expect(() => parseImageRef(raw)).toThrow(InvalidImageRef);
  });

  it('formats back', () => {
    expect(formatImageRef(parseImageRef('node:22'))).toBe('library/node:22');
    expect(formatImageRef(parseImageRef(`x@${D}`))).toBe(`library/x@${D}`);
  });

  it('takes repository names literally', () => {
    expect(parseRepoName('app')).toBe('app');
    expect(() => parseRepoName('App')).toThrow(InvalidImageRef);
    expect(() => parseRepoName('a/_b')).toThrow(InvalidImageRef);
  });
});
