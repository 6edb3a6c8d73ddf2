"""``localdev.fake_stack.moto_template``: a synthesized template reduced to what moto creates."""

from __future__ import annotations

from typing import Any

from localdev.fake_stack import ACCOUNT, REGION, moto_template

SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:S/WebhookSecret-AbCdEf"

SYNTHESIZED: dict[str, Any] = {
    "Parameters": {"BootstrapVersion": {"Type": "AWS::SSM::Parameter::Value<String>"}},
    "Rules": {"CheckBootstrapVersion": {"Assertions": []}},
    "Resources": {
        "WebhookSecret": {"Type": "AWS::SecretsManager::Secret", "Properties": {}},
        "Api": {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Name": "webhooks"}},
        "Stage": {"Type": "AWS::ApiGateway::Stage", "Properties": {"StageName": "prod"}},
        "Alarm": {"Type": "AWS::CloudWatch::Alarm", "Properties": {}},
        "Param": {"Type": "AWS::SSM::Parameter", "Properties": {"Type": "String", "Value": "x"}},
        "Function": {
            "Type": "AWS::Lambda::Function",
            "DependsOn": ["Alarm", "Param"],
            "Metadata": {"aws:asset:path": "asset.abc"},
            "Properties": {
                "Code": {"S3Bucket": {"Fn::Sub": "cdk-assets-${AWS::AccountId}"}, "S3Key": "k"},
                "Layers": [{"Ref": "Layer"}],
                "Environment": {
                    "Variables": {
                        "SECRET": {"Ref": "WebhookSecret"},
                        "ALARM": {"Fn::GetAtt": ["Alarm", "Arn"]},
                        "PARAM": {"Ref": "Param"},
                        "SUB": {"Fn::Sub": "${Api}/${Stage}/${Param}/${Alarm.Arn}/${AWS::Region}"},
                    }
                },
            },
        },
        "Layer": {"Type": "AWS::Lambda::LayerVersion", "Properties": {}},
    },
    "Outputs": {
        "Url": {"Value": {"Fn::Join": ["", ["https://", {"Ref": "Api"}, "/", {"Ref": "Stage"}]]}}
    },
}


def test_moto_template_keeps_what_the_cli_reads_and_stands_in_for_the_rest() -> None:
    body, left_out = moto_template(SYNTHESIZED, {"WebhookSecret": SECRET_ARN}, "S")
    assert sorted(body["Resources"]) == ["Function", "Param"]
    assert left_out == ("Alarm", "Api", "Layer", "Stage")
    assert "Parameters" not in body and "Rules" not in body
    function = body["Resources"]["Function"]
    assert function["DependsOn"] == ["Param"]
    assert "Metadata" not in function
    assert function["Properties"]["Code"] == {
        "ZipFile": "def handler(event, context):\n    return None\n"
    }
    assert "Layers" not in function["Properties"]
    assert function["Properties"]["Environment"]["Variables"] == {
        "SECRET": SECRET_ARN,
        "ALARM": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm",
        "PARAM": {"Ref": "Param"},
        "SUB": {
            "Fn::Sub": f"api/prod/${{Param}}/arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm/${{AWS::Region}}"
        },
    }
    # moto needs a name for an SSM parameter; CloudFormation would make one up.
    assert body["Resources"]["Param"]["Properties"]["Name"] == "/S/Param"
    assert body["Outputs"]["Url"]["Value"] == {"Fn::Join": ["", ["https://", "api", "/", "prod"]]}
    # The input is not changed.
    assert "Layers" in SYNTHESIZED["Resources"]["Function"]["Properties"]
