// Variable substitution with Docker's rules (Dockerfile reference §Environment replacement;
// moby/buildkit frontend/dockerfile/shell/lex.go). The parser library gives us instructions
// and their raw argument text; what a `$VAR` means inside them is Docker's small shell
// dialect, which no library implements, so it lives here:
//   $NAME  ${NAME}  ${NAME:-word} ${NAME-word}  ${NAME:+word} ${NAME+word}  ${NAME:?msg} ${NAME?msg}
// 'single quotes' are literal, "double quotes" expand, the escape character escapes the next
// character. In word lists (COPY, EXPOSE, …) unquoted whitespace — also inside an unquoted
// expansion — separates words.
import { InvalidDockerfile } from '../errors/index.ts';

export type Vars = ReadonlyMap<string, string>;

const NAME_START = /[A-Za-z_]/;
const NAME_CHAR = /[A-Za-z0-9_]/;

class Lexer {
  private readonly s: string;
  private i = 0;
  private readonly escape: string;
  private readonly vars: Vars;
  private readonly line: number;
  /** Words so far; `cur === null` means no word is open. */
  readonly words: string[] = [];
  private cur: string | null = null;
  private readonly splitting: boolean;

  constructor(s: string, vars: Vars, escape: string, line: number, splitting: boolean) {
    this.splitting = splitting;
    this.s = s;
    this.vars = vars;
    this.escape = escape;
    this.line = line;
  }

  private fail(why: string): never {
    throw new InvalidDockerfile(`line ${this.line}: ${why}`, { line: this.line });
  }

  private raw(text: string): void {
    this.cur = (this.cur ?? '') + text;
  }

  /** Unquoted text: whitespace ends the current word. */
  private split(text: string): void {
    if (!this.splitting) return this.raw(text);
    for (const ch of text) {
      if (/\s/.test(ch)) this.endWord();
      else this.raw(ch);
    }
  }

  private endWord(): void {
    if (this.cur !== null) this.words.push(this.cur);
    this.cur = null;
  }

  run(): string[] {
    const s = this.s;
    while (this.i < s.length) {
      const ch = s[this.i] as string;
      if (ch === "'") {
        const end = s.indexOf("'", this.i + 1);
        if (end < 0) this.fail(`unterminated single quote in ${JSON.stringify(s)}`);
        this.raw(s.slice(this.i + 1, end));
        this.i = end + 1;
      } else if (ch === '"') {
        this.i++;
        this.raw(this.doubleQuoted());
      } else if (ch === '$') {
        this.i++;
        this.split(this.dollar());
      } else if (ch === this.escape) {
        this.i++;
        // A trailing escape stays literal, as in Docker.
        this.raw(this.i < s.length ? (s[this.i++] as string) : ch);
      } else if (this.splitting && /\s/.test(ch)) {
        this.endWord();
        this.i++;
      } else {
        this.raw(ch);
        this.i++;
      }
    }
    this.endWord();
    return this.words;
  }

  private doubleQuoted(): string {
    const s = this.s;
    let out = '';
    while (this.i < s.length) {
      const ch = s[this.i] as string;
      if (ch === '"') {
        this.i++;
        return out;
      }
      if (ch === '$') {
        this.i++;
        out += this.dollar();
      } else if (
        ch === this.escape &&
        this.i + 1 < s.length &&
        ['"', '$', this.escape].includes(s[this.i + 1] as string)
      ) {
        out += s[this.i + 1];
        this.i += 2;
      } else {
        out += ch;
        this.i++;
      }
    }
    this.fail(`unterminated double quote in ${JSON.stringify(s)}`);
  }

  private name(): string {
    const s = this.s;
    const start = this.i;
    if (this.i < s.length && NAME_START.test(s[this.i] as string)) {
      while (this.i < s.length && NAME_CHAR.test(s[this.i] as string)) this.i++;
    }
    return s.slice(start, this.i);
  }

  /** After a `$`: the expansion's value. */
  private dollar(): string {
    const s = this.s;
    if (s[this.i] !== '{') {
      const name = this.name();
      return name === '' ? '$' : (this.vars.get(name) ?? '');
    }
    this.i++;
    const name = this.name();
    if (name === '')
      this.fail(
        `bad substitution in ${JSON.stringify(s)}: \${ must be followed by a variable name`,
      );
    const c = s[this.i];
    if (c === '}') {
      this.i++;
      return this.vars.get(name) ?? '';
    }
    let colon = false;
    if (c === ':') {
      colon = true;
      this.i++;
    }
    const op = s[this.i];
    if (op !== '-' && op !== '+' && op !== '?') {
      this.fail(
        `unsupported modifier ${JSON.stringify((colon ? ':' : '') + (op ?? ''))} in \${${name}…} (supported: :- - :+ + :? ?)`,
      );
    }
    this.i++;
    const word = this.nestedWord();
    const value = this.vars.get(name);
    const unset = value === undefined || (colon && value === '');
    switch (op) {
      case '-':
        return unset ? word : (value as string);
      case '+':
        return unset ? '' : word;
      default:
        if (unset) this.fail(`${name}: ${word || 'is not set'}`);
        return value as string;
    }
  }

  /** The word of a `${NAME:-word}` up to its closing brace, itself expanded. */
  private nestedWord(): string {
    const s = this.s;
    let out = '';
    while (this.i < s.length) {
      const ch = s[this.i] as string;
      if (ch === '}') {
        this.i++;
        return out;
      }
      if (ch === '$') {
        this.i++;
        out += this.dollar();
      } else if (ch === "'") {
        const end = s.indexOf("'", this.i + 1);
        if (end < 0) this.fail(`unterminated single quote in ${JSON.stringify(s)}`);
        out += s.slice(this.i + 1, end);
        this.i = end + 1;
      } else if (ch === '"') {
        this.i++;
        out += this.doubleQuoted();
      } else if (ch === this.escape && this.i + 1 < s.length) {
        out += s[this.i + 1];
        this.i += 2;
      } else {
        out += ch;
        this.i++;
      }
    }
    this.fail(`missing '}' in ${JSON.stringify(s)}`);
  }
}

/** One word (ENV/LABEL/ARG values, WORKDIR, USER…): quotes removed, variables expanded, whitespace kept. */
export function expandWord(s: string, vars: Vars, escape = '\\', line = 0): string {
  return new Lexer(s, vars, escape, line, false).run().join('');
}

/** Word list (COPY, ADD, EXPOSE, VOLUME, FROM…): unquoted whitespace splits words. */
export function expandWords(s: string, vars: Vars, escape = '\\', line = 0): string[] {
  return new Lexer(s, vars, escape, line, true).run();
}
