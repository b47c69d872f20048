// Dockerfile syntax and Docker's substitution rules, without containers.
import { describe, expect, it } from 'vitest';
import { parseDockerfile, joinContinuations } from './parse.ts';
import { expandWord, expandWords } from './words.ts';
import { globToRegExp } from './sources.ts';
import { applyMeta, parseDuration, substitutionVars } from './config.ts';
import type { ContainerConfig } from '../registry/index.ts';

const vars = new Map([
  ['A', 'one'],
  ['EMPTY', ''],
  ['SP', 'x y'],
]);

describe('variable substitution (Dockerfile reference §Environment replacement)', () => {
  it.each([
    ['$A', 'one'],
    ['${A}', 'one'],
    ['${A}x', 'onex'],
    ['$Ax', ''],
    ['pre-$A-post', 'pre-one-post'],
    ['${MISSING:-def}', 'def'],
    ['${EMPTY:-def}', 'def'],
    ['${EMPTY-def}', ''],
    ['${MISSING-def}', 'def'],
    ['${A:+alt}', 'alt'],
    ['${EMPTY:+alt}', ''],
    ['${EMPTY+alt}', 'alt'],
    ['${MISSING:+alt}', ''],
    ['${MISSING:-$A}', 'one'],
    ['${MISSING:-"a b"}', 'a b'],
    ["'$A'", '$A'],
    ['"$A"', 'one'],
    ['\\$A', '$A'],
    ['"\\$A"', '$A'],
    ['a\\ b', 'a b'],
    ['$', '$'],
    ['a $ b', 'a $ b'],
  ])('%s → %s', (input, want) => {
    expect(expandWord(input, vars)).toBe(want);
  });

  it('splits word lists on unquoted whitespace, also inside unquoted expansions', () => {
    expect(expandWords('a "b c" $SP \'d e\'', vars)).toEqual(['a', 'b c', 'x', 'y', 'd e']);
    expect(expandWords('"$SP" $EMPTY z', vars)).toEqual(['x y', 'z']);
  });

  it('honours the escape character', () => {
    expect(expandWord('C:\\app `$A', vars, '`')).toBe('C:\\app $A');
  });

  it('refuses what it does not know, with the line', () => {
    expect(() => expandWord('${A%x}', vars, '\\', 7)).toThrow(/line 7: unsupported modifier/);
    expect(() => expandWord('${MISSING:?must be set}', vars, '\\', 2)).toThrow(
      /MISSING: must be set/,
    );
    expect(() => expandWord('"open', vars)).toThrow(/unterminated double quote/);
  });
});

describe('parseDockerfile', () => {
  it('splits global ARGs and stages, names stages, keeps lines and flags', () => {
    const p = parseDockerfile(
      'ARG V=1\nFROM busybox:$V AS Build\nCOPY --from=build --chown=1:1 a b\nFROM scratch\nCMD ["x"]\n',
    );
    expect(p.globalArgs.map((a) => a.props)).toEqual([[{ name: 'V', value: '1' }]]);
    expect(p.stages.map((s) => [s.name, s.from.line, s.instrs.length])).toEqual([
      ['build', 2, 1],
      [null, 4, 1],
    ]);
    const copy = p.stages[0]?.instrs[0];
    expect([...(copy?.flags ?? [])]).toEqual([
      ['from', 'build'],
      ['chown', '1:1'],
    ]);
    expect(copy?.args).toBe('a b');
    expect(p.stages[1]?.instrs[0]?.json).toEqual(['x']);
  });

  it('joins continuations and drops comment lines inside them', () => {
    expect(joinContinuations('echo a && \\\n  # note\n\n  echo b', '\\')).toBe(
      'echo a &&   echo b',
    );
    const p = parseDockerfile('FROM x\nRUN echo a \\\n # c\n && echo b\n');
    expect(p.stages[0]?.instrs[0]?.args).toBe('echo a  && echo b');
  });

  it('treats an invalid JSON array as the shell form, as Docker does', () => {
    const p = parseDockerfile("FROM x\nCMD ['single', 'quotes']\n");
    expect(p.stages[0]?.instrs[0]?.json).toBeNull();
  });

  it('refuses with line numbers', () => {
    expect(() => parseDockerfile('RUN x\nFROM y\n')).toThrow(/line 1: RUN before the first FROM/);
    expect(() => parseDockerfile('FROM y\nRUN <<EOF\necho\nEOF\n')).toThrow(/line 2: heredocs/);
    expect(() => parseDockerfile('FROM y\nRUN --mount=type=cache,target=/x true\n')).toThrow(
      /line 2: RUN --mount is not supported/,
    );
    expect(() => parseDockerfile('FROM a AS one\nFROM b AS one\n')).toThrow(
      /line 2: duplicate stage name/,
    );
    expect(() => parseDockerfile('# only a comment\n')).toThrow(/no FROM/);
  });
});

describe('helpers', () => {
  it('matches COPY globs like Go filepath.Match', () => {
    expect(globToRegExp('src/*.js').test('src/a.js')).toBe(true);
    expect(globToRegExp('src/*.js').test('src/sub/a.js')).toBe(false);
    expect(globToRegExp('package*.json').test('package-lock.json')).toBe(true);
    expect(globToRegExp('file?.[ch]').test('file1.c')).toBe(true);
    expect(globToRegExp('file?.[ch]').test('file1.o')).toBe(false);
    expect(globToRegExp('a.b').test('axb')).toBe(false);
  });

  it('parses Go durations into nanoseconds', () => {
    expect(parseDuration('1m30s', 1, 'interval')).toBe(90e9);
    expect(parseDuration('500ms', 1, 'interval')).toBe(5e8);
    expect(() => parseDuration('5 minutes', 4, 'timeout')).toThrow(
      /line 4: HEALTHCHECK --timeout=5 minutes/,
    );
  });
});

describe('metadata instructions (applyMeta)', () => {
  const meta = (lines: string, config: ContainerConfig = {}) => {
    const st = { config: structuredClone(config), cmdSet: false };
    for (const i of parseDockerfile(`FROM x\n${lines}\n`).stages[0]?.instrs ?? [])
      applyMeta(st, i, substitutionVars(st.config, new Map()), '\\');
    return st.config;
  };

  it('ENV values in one instruction see the variables as they were before it', () => {
    expect(meta('ENV A=1\nENV A=2 B=$A').Env).toEqual(['A=2', 'B=1']);
  });

  it('ENTRYPOINT resets a CMD inherited from the base image, but not one set in the stage', () => {
    expect(meta('ENTRYPOINT ["node"]', { Cmd: ['bash'] }).Cmd).toBeNull();
    expect(meta('CMD ["app.js"]\nENTRYPOINT ["node"]', { Cmd: ['bash'] }).Cmd).toEqual(['app.js']);
    expect(meta('SHELL ["/bin/bash", "-c"]\nENTRYPOINT node app.js').Entrypoint).toEqual([
      '/bin/bash',
      '-c',
      'node app.js',
    ]);
  });

  it('HEALTHCHECK exec form, NONE, and options', () => {
    expect(
      meta('HEALTHCHECK --start-period=1m CMD ["curl", "-f", "http://localhost/"]').Healthcheck,
    ).toEqual({
      Test: ['CMD', 'curl', '-f', 'http://localhost/'],
      StartPeriod: 60e9,
    });
    expect(meta('HEALTHCHECK NONE').Healthcheck).toEqual({ Test: ['NONE'] });
    expect(() => meta('HEALTHCHECK --retries=many CMD true')).toThrow(
      /line 2: HEALTHCHECK --retries=many/,
    );
  });

  it('EXPOSE ranges and protocols; bad ports are refused with the line', () => {
    expect(Object.keys(meta('EXPOSE 8000-8002 53/udp').ExposedPorts ?? {})).toEqual([
      '8000/tcp',
      '8001/tcp',
      '8002/tcp',
      '53/udp',
    ]);
    expect(() => meta('EXPOSE http')).toThrow(/line 2: EXPOSE http/);
  });
});
