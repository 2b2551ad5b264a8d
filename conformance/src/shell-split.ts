// Splits a command line into words the way a POSIX shell would, without running a shell: no variables,
// globs, pipes or redirections; single quotes are literal, double quotes allow \" \\ \$ \` escapes, and a
// backslash outside quotes escapes the next character.
import { UsageError } from './types.ts';

export function splitCommand(command: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let i = 0;
  const n = command.length;
  while (i < n) {
    const ch = command[i];
    if (ch === "'") {
      const end = command.indexOf("'", i + 1);
      if (end < 0) throw new UsageError(`unterminated single quote in command: ${command}`);
      word += command.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (ch === '"') {
      i++;
      let closed = false;
      while (i < n) {
        const c = command[i];
        if (c === '"') {
          closed = true;
          i++;
          break;
        }
        if (c === '\\' && i + 1 < n && '"\\$`\n'.includes(command[i + 1])) {
          if (command[i + 1] !== '\n') word += command[i + 1];
          i += 2;
          continue;
        }
        word += c;
        i++;
      }
      if (!closed) throw new UsageError(`unterminated double quote in command: ${command}`);
      inWord = true;
    } else if (ch === '\\') {
      if (i + 1 >= n) throw new UsageError(`command ends with a lone backslash: ${command}`);
      if (command[i + 1] !== '\n') word += command[i + 1];
      inWord = true;
      i += 2;
    } else if (ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r') {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
      i++;
    } else {
      word += ch;
      inWord = true;
      i++;
    }
  }
  if (inWord) words.push(word);
  return words;
}
