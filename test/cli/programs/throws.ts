/* throws: the run's status is 1 */
export default function (): number {
  throw new Error('the program gave up');
}
