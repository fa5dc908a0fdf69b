/** The `none` tokenizer: the line as it is (tokens are its whitespace-separated fields). */
export function tokenizeNone(line: string): string {
  return line;
}
