// Entry of a router cluster worker (see planes.ts).
import { runWorker } from './planes.ts';

runWorker();
