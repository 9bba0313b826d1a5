import express, { type NextFunction, type Request, type Response } from 'express';
import request from 'supertest';
import { consistency, consistencyOf } from '../../../src/express.js';
import {
  type BuildApp,
  bearerUser,
  describeAdapter,
  errorBody,
  type Sent,
} from '../../support/framework-suite.js';

function sent(response: request.Response): Sent {
  const cookies = response.headers['set-cookie'] as unknown as string[] | undefined;
  return {
    status: response.status,
    header: (name) => response.headers[name] as string | undefined,
    setCookies: cookies ?? [],
    body: response.body as Record<string, unknown>,
  };
}

const build: BuildApp = async (logic, suite) => {
  const app = express();
  app.use(express.json());
  app.use(
    consistency<Request>({
      ...suite.options,
      ...(suite.withUserKey ? { userKey: (req) => bearerUser(req.get('authorization')) } : {}),
    }),
  );
  const key = (req: Request) => String(req.params['key']);
  app.get('/items/:key', async (req, res) => {
    res.json(await logic.read(consistencyOf(req), key(req)));
  });
  app.post('/items/:key', async (req, res) => {
    res.json(await logic.write(consistencyOf(req), key(req), req.body.value));
  });
  app.post('/fail/:key', async (req, res) => {
    res.json(await logic.writeThenFail(consistencyOf(req), key(req), req.body.value));
  });
  app.post('/signup', async (req, res) => {
    res.json(await logic.signup(consistencyOf(req), req.body.user));
  });
  app.post('/login', async (req, res) => {
    res.json(await logic.login(consistencyOf(req), req.body.user));
  });
  if (suite.customErrors) {
    app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
      res.status(500).json(errorBody(error));
    });
  } else {
    // Express's final handler answers (500, an HTML page); without this it would also log.
    app.set('env', 'test');
  }
  return {
    send: async (method, path, headers = {}, body = undefined) => {
      const test = method === 'GET' ? request(app).get(path) : request(app).post(path);
      test.set(headers);
      return sent(await (body === undefined ? test : test.send(body)));
    },
    close: async () => {},
  };
};

describeAdapter('Express', build);
