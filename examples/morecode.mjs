// The old tool's morecode.py, in JavaScript. A function's return value becomes the step's
// Outputs: with two names (Outputs: [str, l]) it returns two values, as a list.
import { inspect } from 'node:util';

export function mangleSomeInput(someVar, arr) {
  return [`I just got some var: ${inspect(someVar)}`, arr.length];
}

export function getSomeMangledInput(v, l) {
  console.log(v);
  console.log(l);
}

export function sendDict(d) {
  console.log(d);
}
