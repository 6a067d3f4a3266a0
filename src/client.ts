/**
 * Builds the Temporal client from the connection settings (TEMPORAL_ADDRESS, namespace, TLS/mTLS, API
 * key): the same variables as the worker and the Temporal CLI.
 */
import { Client, Connection } from '@temporalio/client';
import type { TemporalConnectionSettings } from './config/temporal-connection';

export async function connectClient(
  settings: TemporalConnectionSettings,
  address = settings.address,
): Promise<Client> {
  if (!address)
    throw new Error('TEMPORAL_ADDRESS is not set: say where the Temporal cluster is, or use `npm start`');
  const connection = await Connection.connect({ address, tls: settings.tls, apiKey: settings.apiKey });
  return new Client({ connection, namespace: settings.namespace });
}
