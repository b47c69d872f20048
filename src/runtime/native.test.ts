import { runtimeContract } from './contract.case.ts';

runtimeContract('native');
