// The old tool's somecode.py, in JavaScript.
export function printHelloWorld() {
  console.log('Hello World!');
}
