import type { EC2Client } from '@aws-sdk/client-ec2';
import { errorMessage } from '../../util/errors.js';
import type { Logger } from '../../util/log.js';
import type { Ec2Sdk } from './client.js';

// What EC2 says about instance types and images, asked once per type or image and kept for the
// process's life (neither changes under a running deployment): a type's vCPU count (the default
// slots of its instances, EC2.Slots) and an image's root device name (EC2.RootVolumeSize needs it
// to name the volume it resizes).

export class Ec2Catalog {
  private readonly vcpus = new Map<string, Promise<number>>();
  private readonly rootDevices = new Map<string, Promise<string>>();

  constructor(
    private readonly sdk: Ec2Sdk,
    private readonly ec2: EC2Client,
    private readonly log: Logger,
  ) {}

  /** The vCPU count of `type` (DescribeInstanceTypes); 1 when EC2 will not say (with a warning). */
  vcpusOf(type: string): Promise<number> {
    let known = this.vcpus.get(type);
    if (!known) {
      known = this.ec2.send(new this.sdk.DescribeInstanceTypesCommand({ InstanceTypes: [type as never] })).then(
        (reply) => reply.InstanceTypes?.[0]?.VCpuInfo?.DefaultVCpus ?? 1,
        (err) => {
          // Not cached: the next launch asks again (a throttled call is no answer).
          this.vcpus.delete(type);
          this.log.warn(`EC2: DescribeInstanceTypes for ${type} failed (${errorMessage(err)}); its instances take one job at a time until it answers (or set EC2.Slots)`);
          return 1;
        },
      );
      this.vcpus.set(type, known);
    }
    return known;
  }

  /** The root device name of `imageId` (DescribeImages). Throws when EC2 does not know the image. */
  rootDeviceOf(imageId: string): Promise<string> {
    let known = this.rootDevices.get(imageId);
    if (!known) {
      known = this.ec2.send(new this.sdk.DescribeImagesCommand({ ImageIds: [imageId] })).then((reply) => {
        const name = reply.Images?.[0]?.RootDeviceName;
        if (!name) throw new Error(`DescribeImages gives no root device for ${imageId}`);
        return name;
      });
      known.catch(() => this.rootDevices.delete(imageId));
      this.rootDevices.set(imageId, known);
    }
    return known;
  }
}
