import { runtimeContract } from './contract.case.ts';

runtimeContract('runc');
