"""AWS: EC2 images (:mod:`.ec2`), the S3 client work of publishing (:mod:`.s3`), and what
both share (:mod:`.common`: error reasons, the retry policy). boto3 and botocore are
imported inside the functions that use them, so importing these modules stays cheap."""
